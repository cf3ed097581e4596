//! What the plain listener answers itself when `[tls]` is on: ACME's HTTP-01 challenges
//! (`/.well-known/acme-challenge/TOKEN`) and, with `redirect_http`, a 308 to the same URL over
//! HTTPS for everything else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, Response, StatusCode, Uri};
use umbra_proxy::server::ProxyBody;

/// Where ACME's HTTP-01 challenges ask (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The tokens of the challenges in progress and their key authorizations.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: Mutex<HashMap<String, String>>,
}

impl Challenges {
    pub fn add(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The plain listener's hook: challenges, then the redirect (when on).
#[derive(Debug, Default)]
pub struct Plain {
    pub challenges: Arc<Challenges>,
    /// `[tls] redirect_http` of the config in force.
    pub redirect: AtomicBool,
    /// The HTTPS port the redirect names (443 is left out of the URL).
    pub https_port: AtomicU16,
}

impl umbra_proxy::PlainHook for Plain {
    fn answer(
        &self,
        method: &Method,
        uri: &Uri,
        host: &HeaderValue,
    ) -> Option<Response<ProxyBody>> {
        let path = uri.path();
        if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
            return self.challenge(method, token);
        }
        if !self.redirect.load(Ordering::Relaxed) {
            return None;
        }
        let location = https_url(host, uri, self.https_port.load(Ordering::Relaxed))?;
        let mut resp = Response::new(ProxyBody::empty());
        *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
        resp.headers_mut().insert(http::header::LOCATION, location);
        Some(resp)
    }
}

impl Plain {
    /// The key authorization for a token umbra is being challenged on; other tokens go on to
    /// the routes (an app may answer its own challenges).
    fn challenge(&self, method: &Method, token: &str) -> Option<Response<ProxyBody>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let body = self.challenges.get(token)?;
        let mut resp = Response::new(ProxyBody::full(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(resp)
    }
}

/// `https://HOST[:PORT]/path?query` for a request whose Host is `host` (any port dropped);
/// `None` without a usable host.
fn https_url(host: &HeaderValue, uri: &Uri, port: u16) -> Option<HeaderValue> {
    let host = host.to_str().ok()?;
    let name = match host.rfind(':') {
        Some(i) if !host.ends_with(']') && host[..i].rfind(':').is_none() => &host[..i],
        Some(i) if host.starts_with('[') && host[..i].ends_with(']') => &host[..i],
        _ => host,
    };
    if name.is_empty() {
        return None;
    }
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = match port {
        443 | 0 => format!("https://{name}{target}"),
        p => format!("https://{name}:{p}{target}"),
    };
    HeaderValue::from_str(&url).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, uri: &str, port: u16) -> Option<String> {
        https_url(
            &HeaderValue::from_str(host).unwrap(),
            &uri.parse().unwrap(),
            port,
        )
        .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn the_redirect_keeps_path_and_query_and_names_the_https_port() {
        assert_eq!(
            url("a.test", "/x?y=1", 443).unwrap(),
            "https://a.test/x?y=1"
        );
        assert_eq!(
            url("a.test:8080", "/x", 8443).unwrap(),
            "https://a.test:8443/x"
        );
        assert_eq!(url("[::1]:80", "/", 443).unwrap(), "https://[::1]/");
        assert_eq!(url("[::1]", "/", 443).unwrap(), "https://[::1]/");
        assert_eq!(url("", "/", 443), None);
    }
}
