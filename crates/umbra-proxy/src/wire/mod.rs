//! Bytes and fields on both sides of the proxy: umbra's own headers and the hop-by-hop rules
//! (`headers`), an upstream response's fields kept as lines (`relay`), and the body types that
//! stream through and copy what a shadow comparison needs (`body`). No I/O of its own.

pub mod body;
pub mod headers;
pub mod relay;
