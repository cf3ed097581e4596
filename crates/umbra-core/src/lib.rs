//! umbra's data plane and runtime state.
//!
//! Config (file → validated), routing rules, the runtime snapshot swapped on reload, request
//! forwarding, health checks, canary split, mirroring to shadows, and telemetry. Nothing here
//! talks to the store or the admin UI directly: comparisons leave through a bounded channel.

pub mod canary;
pub mod comparer;
pub mod config;
pub mod discovery;
pub mod health;
pub mod proxy;
pub mod resolve;
pub mod rules;
pub mod runtime;
pub mod shadow;
pub mod snapshot;
pub mod telemetry;
pub mod upstream;

pub use config::Config;
pub use runtime::Runtime;
