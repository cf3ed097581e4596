//! The data the comparison engine works on and produces: normalized responses, differences,
//! verdicts. Shared by the data plane (which builds them), the store (which persists them)
//! and the admin API (which shows them).

use serde::{Deserialize, Serialize};

/// The outcome of one mirrored request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No difference at all (after ignore rules).
    Same,
    /// At least one difference that noise does not explain.
    Different,
    /// Every difference is explained by noise (the secondary shows it too).
    Noise,
    /// The shadow was unreachable, timed out or reset.
    ShadowError,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Same,
        Verdict::Different,
        Verdict::Noise,
        Verdict::ShadowError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Different => "different",
            Verdict::Noise => "noise",
            Verdict::ShadowError => "shadow_error",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What sort of difference was found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Status codes differ (path `status`).
    Status,
    /// A header differs, is missing or is extra (path `header:<name>`).
    Header,
    /// Same JSON type, different value.
    Changed,
    /// Different JSON types (e.g. number vs string).
    Type,
    /// Present in the candidate only.
    Added,
    /// Present in the primary only.
    Removed,
    /// Arrays of different length (path of the array).
    Length,
    /// Non-JSON bodies differ (text line diff, or binary digest; path `body`).
    Text,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Changed => "changed",
            DiffKind::Type => "type",
            DiffKind::Added => "added",
            DiffKind::Removed => "removed",
            DiffKind::Length => "length",
            DiffKind::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<DiffKind> {
        [
            DiffKind::Status,
            DiffKind::Header,
            DiffKind::Changed,
            DiffKind::Type,
            DiffKind::Added,
            DiffKind::Removed,
            DiffKind::Length,
            DiffKind::Text,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One difference between the primary's and the candidate's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// `status`, `header:<lowercase name>`, `body` (non-JSON), or a JSON Pointer into the body.
    pub path: String,
    pub kind: DiffKind,
    /// The primary's value (absent for `added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<serde_json::Value>,
    /// The candidate's value (absent for `removed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<serde_json::Value>,
}

/// A response reduced to what comparison needs. Bodies are already decoded
/// (no `Content-Encoding`) and possibly truncated to a cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase, in arrival order; repeated names appear repeatedly.
    pub headers: Vec<(String, String)>,
    #[serde(with = "body_serde")]
    pub body: Vec<u8>,
    /// True when the captured body was cut at the capture cap.
    #[serde(default)]
    pub truncated: bool,
    /// Time to the full response, in microseconds.
    pub latency_us: u64,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Bodies are serialized as UTF-8 text when they are text, else as `base64:`-free hex with a
/// `hex:` prefix, so stored rows stay readable in a SQL shell.
mod body_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) if !text.starts_with("hex:") => s.serialize_str(text),
            _ => s.serialize_str(&format!("hex:{}", hex::encode(body))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        match text.strip_prefix("hex:") {
            Some(h) => hex::decode(h).map_err(serde::de::Error::custom),
            None => Ok(text.into_bytes()),
        }
    }
}

/// The request that was mirrored, as stored and shown (secrets already redacted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "body_serde")]
    pub body: Vec<u8>,
}

/// One mirrored request and what came of it: the unit the store persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Assigned by the store; 0 before insertion.
    #[serde(default)]
    pub id: i64,
    /// Unix time in milliseconds.
    pub created_at_ms: i64,
    pub route: String,
    /// The service the request was mirrored to (the route's shadow); findings are per
    /// route and candidate. Empty in comparisons stored before it was recorded.
    #[serde(default)]
    pub candidate: String,
    /// `METHOD /path/{id}` template.
    pub endpoint: String,
    pub request_id: String,
    pub verdict: Verdict,
    pub request: Request,
    pub primary: Response,
    /// Absent when the shadow failed (see `error`).
    pub shadow: Option<Response>,
    /// Why the shadow failed, for `shadow_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Candidate vs primary, after ignore rules.
    pub differences: Vec<Difference>,
    /// Secondary vs primary (noise sample), when a secondary copy was taken.
    #[serde(default)]
    pub noise: Option<Vec<Difference>>,
}
