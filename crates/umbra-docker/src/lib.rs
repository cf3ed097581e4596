//! Docker discovery: container labels (a Traefik-compatible subset plus `umbra.*`) become
//! umbra services and routes, followed live through the engine's event stream.
//!
//! [`labels`] parses what one container asks for, [`model`] turns all containers into
//! services, routes and a per-container report (pure, deterministic), and [`watch`] talks to
//! the engine and pushes each change into the runtime.

mod deploy;
pub mod labels;
pub mod model;
pub mod watch;

pub use watch::{run, DEFAULT_ENDPOINT};
