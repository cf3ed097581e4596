//! What the proxy answers a request with, and the one place that orders a reply's header
//! fields for both server lanes: the fast lane writes them as bytes, hyper's server gets them
//! as a map, and both walk [`Reply::fields`], so the order cannot drift between them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::client::PooledBody;
use crate::wire::body::{BoxError, Tee};
use crate::wire::headers::X_REQUEST_ID;
use crate::wire::relay::Relayed;

/// The body umbra answers with: its own small payload, or the upstream's stream.
pub enum ProxyBody {
    Full(Full<Bytes>),
    Stream(Tee<PooledBody>),
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Full::new(b.into()))
    }

    pub fn empty() -> Self {
        ProxyBody::full(Bytes::new())
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Stream(t) => Pin::new(t).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_end_stream(),
            ProxyBody::Stream(t) => t.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => b.size_hint(),
            ProxyBody::Stream(t) => t.size_hint(),
        }
    }
}

/// A reply: status and body, the upstream's fields still as lines (the usual relayed answer
/// needs no map), umbra's own fields in a map, and umbra's `X-Request-Id` beside them when the
/// map is empty.
///
/// The order, on every lane: the upstream's lines, then the map, then the request id. While
/// there are lines the map holds only umbra's own fields (a canary `Set-Cookie`), so they come
/// after the upstream's: a browser keeps the last cookie of a name, and umbra's must win.
pub struct Reply {
    resp: Response<ProxyBody>,
    relayed: Relayed,
    request_id: Option<HeaderValue>,
    /// The client connection closes after this reply.
    close: bool,
}

/// Receives a reply's header fields in [`Reply::fields`]' order.
pub(crate) trait Fields {
    /// The upstream's relayed lines, as one block.
    fn relayed(&mut self, relayed: &Relayed);
    fn field(&mut self, name: &HeaderName, value: &HeaderValue);
}

impl Reply {
    /// A reply from a response, its lines and umbra's request id (`None` when the map holds
    /// it already).
    pub(crate) fn new(
        resp: Response<ProxyBody>,
        relayed: Relayed,
        request_id: Option<HeaderValue>,
    ) -> Reply {
        Reply {
            resp,
            relayed,
            request_id,
            close: false,
        }
    }

    /// The same reply, after which the client connection closes.
    pub(crate) fn closing(mut self) -> Reply {
        self.close = true;
        self
    }

    pub(crate) fn closes(&self) -> bool {
        self.close
    }

    pub fn status(&self) -> http::StatusCode {
        self.resp.status()
    }

    pub fn body(&self) -> &ProxyBody {
        self.resp.body()
    }

    /// Walks the header fields in the one order both lanes write.
    pub(crate) fn fields(&self, out: &mut impl Fields) {
        out.relayed(&self.relayed);
        for (name, value) in self.resp.headers() {
            out.field(name, value);
        }
        if let Some(id) = &self.request_id {
            out.field(&X_REQUEST_ID, id);
        }
    }

    /// The body, for the fast lane once it has written the status line and the fields.
    pub(crate) fn into_body(self) -> ProxyBody {
        self.resp.into_body()
    }

    /// The reply as one `Response`, for hyper's server.
    pub fn into_response(self) -> Response<ProxyBody> {
        if self.close {
            let mut resp = Reply {
                close: false,
                ..self
            }
            .into_response();
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        if self.relayed.lines().is_empty() && self.request_id.is_none() {
            return self.resp;
        }
        let mut map = MapFields(HeaderMap::with_capacity(self.resp.headers().len() + 8));
        self.fields(&mut map);
        let mut resp = self.resp;
        *resp.headers_mut() = map.0;
        resp
    }
}

impl From<Response<ProxyBody>> for Reply {
    fn from(resp: Response<ProxyBody>) -> Reply {
        Reply::new(resp, Relayed::default(), None)
    }
}

/// Fields gathered into a map, for hyper's server.
struct MapFields(HeaderMap);

impl Fields for MapFields {
    fn relayed(&mut self, relayed: &Relayed) {
        relayed.merge_into(&mut self.0, true);
    }

    fn field(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.0.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::relay::Framed;

    fn relayed(head: &str) -> Relayed {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut slots);
        resp.parse(head.as_bytes()).expect("a head");
        let kinds: Vec<_> = resp
            .headers
            .iter()
            .map(|h| crate::wire::relay::Kind::of(h.name.as_bytes()))
            .collect();
        Relayed::from_fields(
            resp.headers,
            &kinds,
            Framed {
                coded: false,
                connection_plain: true,
            },
        )
    }

    #[test]
    fn a_reply_becomes_one_response_in_the_one_order() {
        let r =
            relayed("HTTP/1.1 200 OK\r\nX-A: 1\r\nSet-Cookie: c=up\r\nX-Request-Id: up\r\n\r\n");
        let mut own = Response::new(ProxyBody::empty());
        own.headers_mut()
            .append("set-cookie", HeaderValue::from_static("c=umbra"));
        let resp = Reply::new(own, r, Some(HeaderValue::from_static("ours"))).into_response();
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(
            resp.headers()
                .get_all("x-request-id")
                .iter()
                .collect::<Vec<_>>(),
            ["ours"]
        );
        assert_eq!(
            resp.headers()
                .get_all("set-cookie")
                .iter()
                .collect::<Vec<_>>(),
            ["c=up", "c=umbra"],
            "umbra's own fields come after the upstream's"
        );
    }
}
