//! umbra's data plane: everything a request passes through.
//!
//! - `wire`: bytes and fields — header relaying, body tees and captures, umbra's own headers.
//! - `client`: the upstream side — the pooled HTTP/1.1 client of umbra's own and hyper's.
//! - `mirror`: off the primary path — shadow dispatch, the compare threads, the noise models and
//!   the bounded queue to the store.
//! - `server`: the client side — listeners, worker balance, the fast lane, hyper's server and
//!   the request handler (route → plan → forward → respond).
//!
//! Modules depend one way: `wire` ← `client` ← `mirror` ← `server`. The control plane
//! (`umbra-core`: config, rules, snapshot, runtime state) knows none of this; the binary wires
//! the two together through [`Proxy`].

use std::sync::Arc;

use umbra_core::Runtime;

pub mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod mirror;
pub mod server;
pub mod wire;

pub use error::{Origin, ProxyError};
pub use mirror::{ComparisonSink, FindingsJudge, FindingsModels, Mirror};
pub use server::{bind, serve, serve_secure, PlainHook, Reply, Secure};

/// What the data plane shares between its workers: the control plane's runtime state and the
/// mirror's queues and models.
pub struct Proxy {
    pub runtime: Arc<Runtime>,
    pub mirror: Mirror,
    /// Answers plain-listener requests before routing (ACME challenges, HTTPS redirects);
    /// set once at start by umbra-edge when `[tls]` is configured.
    pub plain_hook: std::sync::OnceLock<Arc<dyn PlainHook>>,
}

impl Proxy {
    pub fn new(runtime: Arc<Runtime>, sink: Arc<ComparisonSink>) -> Arc<Proxy> {
        Arc::new(Proxy {
            runtime,
            mirror: Mirror::new(sink),
            plain_hook: std::sync::OnceLock::new(),
        })
    }
}
