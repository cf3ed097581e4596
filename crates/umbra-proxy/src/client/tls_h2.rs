//! Requests to `https://` and `h2c://` servers (data plane), on hyper-util's pooled client
//! over hyper-rustls (HTTP/2 or HTTP/1.1 by ALPN) or over TCP with HTTP/2 prior knowledge.
//! One client per worker thread, scheme, CA and connect timeout; HTTP/2 connections carry
//! many requests at once. Plain `http://` never comes here (the direct client is faster).

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use hyper_util::client::legacy;

use umbra_core::config::ServerAddr;
use umbra_core::upstream_client::{tls_cause, UpstreamCa, UpstreamClient};

use super::{within_limits, HyperBody, PooledBody, SendError};
use crate::wire::body::UpstreamBody;
use crate::wire::headers::Added;

/// What goes out: the client's streaming body, or one already in memory (a shadow's).
pub(crate) type OutBody = Either<UpstreamBody, Full<Bytes>>;

struct Entry {
    scheme: String,
    ca: Option<UpstreamCa>,
    connect_timeout: Duration,
    client: UpstreamClient<OutBody>,
}

thread_local! {
    /// A handful at most (schemes × CAs × two timeouts): a list, searched in order.
    static CLIENTS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The head of a request for a non-plain server: the path in origin form and the client's
/// fields, with umbra's `added` ones in place of any of the same name.
pub(crate) struct Head<'a> {
    pub method: &'a http::Method,
    pub path_and_query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub added: &'a Added<'a>,
}

/// Sends a request to `addr` (an `https` or `h2c` server) through this thread's client for
/// its scheme and CA.
pub(crate) async fn send(
    addr: &ServerAddr,
    ca: Option<&UpstreamCa>,
    head: Head<'_>,
    body: OutBody,
    connect_timeout: Duration,
) -> Result<Response<PooledBody>, SendError> {
    let uri_scheme = if addr.scheme == "https" {
        "https"
    } else {
        "http"
    };
    let uri = format!("{uri_scheme}://{}{}", addr.authority, head.path_and_query);
    let uri = uri.parse::<http::Uri>().map_err(|e| SendError::Connect {
        authority: addr.authority.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let mut req = Request::new(body);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = head.headers.clone();
    head.added.merge_into(req.headers_mut());
    // gRPC servers want `te: trailers` (a sign the path keeps trailers, which umbra does); the
    // client's own was dropped with the other hop-by-hop fields.
    if is_grpc(req.headers()) {
        req.headers_mut()
            .insert(TE, HeaderValue::from_static("trailers"));
    }
    let sending = CLIENTS.with(|c| {
        let mut clients = c.borrow_mut();
        client_for(&mut clients, addr, ca, connect_timeout).map(|c| c.request(req))
    });
    let Some(sending) = sending else {
        return Err(SendError::Connect {
            authority: addr.authority.clone(),
            source: std::io::Error::other(format!("no client for `{}`", addr.scheme)),
        });
    };
    let resp = sending.await.map_err(|e| failed(addr, e))?;
    within_limits(&resp)?;
    Ok(resp.map(|inner| PooledBody::Hyper(HyperBody { inner, slot: None })))
}

/// A gRPC request: `content-type: application/grpc` or `application/grpc+...`.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(v.get(16), None | Some(b'+' | b';'))
    })
}

fn client_for<'c>(
    clients: &'c mut Vec<Entry>,
    addr: &ServerAddr,
    ca: Option<&UpstreamCa>,
    connect_timeout: Duration,
) -> Option<&'c UpstreamClient<OutBody>> {
    let found = clients.iter().position(|e| {
        e.scheme == addr.scheme && e.ca.as_ref() == ca && e.connect_timeout == connect_timeout
    });
    let i = match found {
        Some(i) => i,
        None => {
            let client = UpstreamClient::new(&addr.scheme, ca, connect_timeout)?;
            clients.push(Entry {
                scheme: addr.scheme.clone(),
                ca: ca.cloned(),
                connect_timeout,
                client,
            });
            clients.len() - 1
        }
    };
    Some(&clients[i].client)
}

/// A failed exchange as the proxy tells it apart: a refused certificate or handshake, no
/// connection at all (nothing was sent), or a failure after sending.
fn failed(addr: &ServerAddr, e: legacy::Error) -> SendError {
    if let Some(tls) = tls_cause(&e) {
        return SendError::Tls {
            authority: addr.authority.clone(),
            source: tls.clone(),
        };
    }
    if e.is_connect() {
        let text = umbra_core::upstream_client::describe(&e);
        return SendError::Connect {
            authority: addr.authority.clone(),
            source: std::io::Error::other(text),
        };
    }
    SendError::Pooled(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        let mut h = http::HeaderMap::new();
        assert!(!is_grpc(&h));
        for (v, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC; charset=x", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_grpc(&h), grpc, "{v}");
        }
    }
}
