//! Bytes and fields on both sides of the proxy: umbra's own headers and the hop-by-hop rules
//! (`headers`), an upstream response's fields kept as lines (`relay`), the body types that
//! stream through and copy what a shadow comparison needs (`body`), and redirects put back
//! under a stripped prefix (`location`). No I/O of its own.

pub mod body;
pub mod headers;
pub mod location;
pub mod relay;
