//! What a fixture saw ([`Recorded`]) and what it answers ([`Reply`]) (test side).

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// One request as a fixture received it, body included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method, e.g. `"GET"`.
    pub method: String,
    /// Path and query as sent, e.g. `"/users/1?x=2"`.
    pub uri: String,
    /// Headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole request body.
    pub body: Vec<u8>,
    /// `"HTTP/1.1"`, `"HTTP/2.0"`, ...
    pub version: String,
}

impl Recorded {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name, in arrival order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    /// The query without the `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {:?}", self.text()))
    }
}

/// A canned response: status, headers, body, and an optional delay before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers; [`Reply::header`] replaces a header of the same name.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Bytes,
    /// Waited before the response head is sent.
    pub delay: Duration,
}

impl Reply {
    /// An empty body with this status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u16, value: Value) -> Self {
        Reply::bytes(
            status,
            serde_json::to_vec(&value).expect("serialize JSON value"),
        )
        .header("content-type", "application/json")
    }

    /// A text body with `content-type: text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Reply::bytes(status, body.into()).header("content-type", "text/plain; charset=utf-8")
    }

    /// Raw body bytes, no content type.
    pub fn bytes(status: u16, body: impl Into<Bytes>) -> Self {
        Reply {
            body: body.into(),
            ..Reply::status(status)
        }
    }

    /// Sets a header, replacing any header of the same (case-insensitive) name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header, keeping earlier values of the same name (for repeated headers).
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Waits this long before sending the response.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}
