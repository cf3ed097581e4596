//! Test kit for umbra's integration tests and benches (test side only, never linked into the proxy).
//!
//! It runs the real thing in-process: [`Fixture`] upstream servers on ephemeral ports (HTTP/1.1 and
//! h2c), with canned replies, delays and fault endpoints (reset, garbage, hang, streaming, gzip,
//! WebSocket-style upgrade); small HTTP clients ([`get`], [`send`], [`raw_http`], [`KeepAlive`]); and
//! [`assert_eventually!`] / [`eventually`] for what lands asynchronously, such as shadow requests.
//!
//! Everything binds `127.0.0.1:0` and lives in the calling tokio runtime, so tests run in parallel
//! without fixed ports or global servers.
#![forbid(unsafe_code)]

mod client;
mod eventually;
mod fault;
mod fixture;
mod missing;
mod net;
mod record;
mod tasks;
mod wire;

pub use client::{
    get, post_json, raw_http, send, try_get, try_send, ClientError, KeepAlive, TestResponse,
    CLIENT_TIMEOUT,
};
pub use eventually::{eventually, POLL_INTERVAL};
pub use fault::{websocket_accept, RawServer, GARBAGE};
pub use fixture::{Fixture, FixtureBuilder};
pub use missing::skip_unless_ci;
pub use net::free_addr;
pub use record::{Recorded, Reply};
pub use wire::{
    show, Body, Framing, Head, RawRequest, RawUpstream, RawUpstreamBuilder, WireError, WireReader,
    PART_GAP,
};

/// Re-exports used by the exported macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use tokio::time::{sleep, Instant};
}
