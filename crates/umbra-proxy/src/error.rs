//! Errors the proxy answers with itself, each tagged with where it came from and mapped to
//! HTTP in this one place: `{"error": "<code>", "message": "...", "request_id": "..."}`.

use http::{HeaderValue, Response, StatusCode};

use crate::server::ProxyBody;
use crate::wire::body::BoxError;

/// Where a failure came from (pingora's `ErrorSource`): the client's request, the upstream,
/// or umbra itself. Only upstream failures count against an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Downstream,
    Upstream,
    Internal,
}

/// Where a failure came from and how the client is told.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches {method} {host}{path}")]
    NoRoute {
        method: String,
        host: String,
        path: String,
    },
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("upstream {server} is unavailable: {source}")]
    Unavailable {
        server: String,
        #[source]
        source: BoxError,
    },
    #[error("service `{service}` has no healthy server")]
    NoHealthy { service: String },
    #[error("upstream {server} did not answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u128 },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    #[error("method {method} is not proxied")]
    MethodNotAllowed { method: String },
    #[error("the request body could not be read: {reason}")]
    ClientBody { reason: String },
    #[error("upstream {server} answered 101 Switching Protocols to a request that did not ask to switch")]
    UnsolicitedSwitch { server: String },
    /// The route is paused (`umbra pause`) and was not resumed within the pause's `max`.
    #[error("route `{route}` is paused and was not resumed within {max_ms} ms")]
    Paused { route: String, max_ms: u128 },
    /// The route is in maintenance (`umbra maintenance`); `html` for a browser's request.
    #[error("{message}")]
    Maintenance { message: String, html: bool },
    #[error("route `{route}` allows fewer requests; retry in {retry_after} s")]
    RateLimited { route: String, retry_after: u64 },
}

impl ProxyError {
    pub fn origin(&self) -> Origin {
        match self {
            ProxyError::NoRoute { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequest { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::ClientBody { .. }
            | ProxyError::RateLimited { .. } => Origin::Downstream,
            ProxyError::Unavailable { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::UnsolicitedSwitch { .. } => Origin::Upstream,
            ProxyError::NoHealthy { .. }
            | ProxyError::Paused { .. }
            | ProxyError::Maintenance { .. } => Origin::Internal,
        }
    }

    pub fn is_upstream(&self) -> bool {
        self.origin() == Origin::Upstream
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Unavailable { .. } | ProxyError::UnsolicitedSwitch { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::BadRequest { .. } | ProxyError::ClientBody { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NoHealthy { .. }
            | ProxyError::Paused { .. }
            | ProxyError::Maintenance { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute { .. } => "no_route",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::Unavailable { .. } | ProxyError::UnsolicitedSwitch { .. } => {
                "upstream_unavailable"
            }
            ProxyError::BadRequest { .. } | ProxyError::ClientBody { .. } => "bad_request",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::NoHealthy { .. } => "no_healthy_upstream",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Paused { .. } => "paused",
            ProxyError::Maintenance { .. } => "maintenance",
            ProxyError::RateLimited { .. } => "rate_limited",
        }
    }

    /// The JSON error response. Upstream details stay in the log, not in the client's answer,
    /// except a refused TLS handshake's reason (an operator's fix, e.g. the service's `ca`;
    /// nothing of the upstream's own).
    pub fn to_response(&self, request_id: &HeaderValue) -> Response<ProxyBody> {
        if let ProxyError::Maintenance {
            message,
            html: true,
        } = self
        {
            return maintenance_page(message, request_id);
        }
        let message = match self {
            ProxyError::Unavailable { source, .. } => {
                match umbra_core::upstream_client::tls_cause(&**source) {
                    Some(tls) => format!(
                        "the upstream server could not be reached: TLS handshake failed: {tls}"
                    ),
                    None => "the upstream server could not be reached".to_string(),
                }
            }
            ProxyError::UnsolicitedSwitch { .. } => {
                "the upstream server switched protocols unasked".to_string()
            }
            ProxyError::Timeout { timeout_ms, .. } => {
                format!("the upstream server did not answer within {timeout_ms} ms")
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({
            "error": self.code(),
            "message": message,
            "request_id": request_id.to_str().unwrap_or(""),
        });
        let mut resp = Response::new(ProxyBody::full(body.to_string()));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            crate::wire::headers::X_REQUEST_ID.clone(),
            request_id.clone(),
        );
        if let ProxyError::RateLimited { retry_after, .. } = self {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        resp
    }
}

/// The 503 page a browser gets from a route in maintenance.
fn maintenance_page(message: &str, request_id: &HeaderValue) -> Response<ProxyBody> {
    let text: String = message
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Down for maintenance</title></head><body style=\"font-family: system-ui, sans-serif; \
max-width: 36rem; margin: 4rem auto; padding: 0 1rem\"><h1>Down for maintenance</h1>\
<p>{text}</p></body></html>\n"
    );
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        crate::wire::headers::X_REQUEST_ID.clone(),
        request_id.clone(),
    );
    resp
}

/// The first error of type `T` in `e`'s source chain (`e` included).
pub(crate) fn find_in_chain<'e, T: std::error::Error + 'static>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    std::iter::successors(Some(e), |err| err.source()).find_map(|err| err.downcast_ref::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::SendError;

    /// A refused certificate is named in the log line (the error's text) and in the answer.
    #[test]
    fn a_refused_certificate_is_named_in_the_log_and_the_answer() {
        let e = ProxyError::Unavailable {
            server: "https://10.0.0.1:443".into(),
            source: Box::new(SendError::Tls {
                authority: "10.0.0.1:443".into(),
                source: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            }),
        };
        assert_eq!(
            e.to_string(),
            "upstream https://10.0.0.1:443 is unavailable: TLS handshake with 10.0.0.1:443 \
             failed: invalid peer certificate: UnknownIssuer"
        );
        let resp = e.to_response(&HeaderValue::from_static("r1"));
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let ProxyBody::Full(body) = resp.into_body() else {
            panic!("a JSON body")
        };
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(body))
            .unwrap()
            .unwrap()
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "upstream_unavailable");
        assert_eq!(
            json["message"],
            "the upstream server could not be reached: TLS handshake failed: invalid peer \
             certificate: UnknownIssuer"
        );
    }
}
