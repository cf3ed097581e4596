//! umbra's comparison engine: pure, synchronous functions over normalized responses.
//!
//! No I/O and no async here: the data plane captures responses, this crate says how they differ
//! (status, headers, JSON structure, text, digest), groups requests into endpoints, separates
//! real differences from noise, summarizes latency distributions, decodes compressed bodies
//! and redacts secrets before anything is stored.

#![forbid(unsafe_code)]

pub mod compare;
pub mod decode;
pub mod endpoint;
pub mod findings;
#[doc(hidden)]
pub mod fuzzing;
mod json_text;
pub mod latency;
pub mod model;
pub mod noise;
mod params;
pub mod pointer;
pub mod redact;
pub mod secret;
mod tree;
pub mod typed_noise;

pub use compare::{compare, digest, line_diff, CompareConfig, LineChange, LineOp};
pub use decode::{decode_body, DecodeError};
pub use endpoint::{EndpointGrouper, TemplateError};
pub use findings::{
    cause_ids, Finding, FindingsConfig, FindingsLimits, FindingsModel, Observation, Severity,
};
pub use latency::{regression, LatencyRegression, Percentiles};
pub use model::{Comparison, DiffKind, Difference, Request, Response, Verdict};
pub use noise::{field_key, is_significant, FieldStat, NoiseLimits, NoiseModel, Thresholds};
pub use pointer::{PatternError, PointerPattern};
pub use redact::{
    redact_comparison, redact_differences, redact_headers, redact_json, redact_request,
    redact_response, Redaction, DEFAULT_REDACTED_HEADERS, REDACTED,
};
pub use secret::{squash_name, SecretNames};
pub use typed_noise::is_typed_noise;
