//! umbra's control plane: what the data plane (`umbra-proxy`) reads, and nothing of how it
//! moves bytes.
//!
//! Config (file → validated), routing rules, the runtime snapshot swapped on reload, runtime
//! route changes, health checks, the canary split, discovery's inputs, and telemetry (metrics
//! and the access log). Nothing here talks to the store or the admin UI directly.

pub mod access_log;
pub mod canary;
pub mod config;
pub mod deploy;
pub mod discovery;
pub mod health;
pub mod ratelimit;
pub mod resolve;
pub mod rollout;
pub mod rules;
pub mod runtime;
pub mod snapshot;
pub mod telemetry;
pub mod upstream;
pub mod upstream_client;

pub use config::Config;
pub use runtime::Runtime;
