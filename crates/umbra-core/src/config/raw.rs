//! The config as written: serde structs that mirror the TOML (and the admin API's JSON) one to
//! one, with unknown keys rejected. Nothing here is validated; `validate` turns these into typed
//! config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub docker: Option<RawDocker>,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub services: BTreeMap<String, RawService>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub listen: Option<String>,
    pub max_body: Option<String>,
    pub timeout: Option<String>,
    pub max_header_size: Option<String>,
    pub header_timeout: Option<String>,
    pub grace: Option<String>,
    pub workers: Option<u32>,
    pub fast_lane: Option<bool>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    /// Host names (besides IP addresses and `localhost`) that reach the admin listener.
    pub hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<String>,
    pub keep: Option<String>,
    pub keep_same: Option<f64>,
    pub queue: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `json` (default when stdout is not a terminal) or `pretty`.
    pub format: Option<String>,
    /// `info`, `debug`, ... or a tracing filter.
    pub level: Option<String>,
    /// Access log on/off (default on).
    pub access: Option<bool>,
    /// Access log to this file (rotated) instead of stdout.
    pub file: Option<String>,
    /// Size at which the access-log file is rotated (default 10MiB).
    pub max_size: Option<String>,
    /// Rotated files kept besides the current one (default 3).
    pub keep: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    pub network: Option<String>,
    pub exposed_by_default: Option<bool>,
    /// Only containers of this compose project (label `com.docker.compose.project`).
    pub project: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<RawHealth>,
    /// `round_robin` (default) or `least_requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// A PEM file of CA certificates trusted for this service's `https://` servers (instead
    /// of the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive successes to mark a server up (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Consecutive failures to mark a server down (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub name: String,
    pub rule: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// One candidate (a table) or several (a list of tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RawShadows>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<RawCanary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<RawCompare>,
    /// Explicit endpoint templates, e.g. `GET /users/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact: Option<RawRedact>,
    /// Protocols a client may switch to through this route (default `["websocket"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades: Option<Vec<String>>,
    /// Pass request header names with `_` (default false: dropped, as nginx does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underscores_in_headers: Option<bool>,
    /// Header fields set and removed on the request and on the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<RawHeaders>,
    /// A token bucket per client IP or per header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RawRateLimit>,
    /// An automated rollout of a candidate service (see `rollout::spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RawRollout>,
}

/// `rollout = { service, steps, gates..., hooks }` on a route, and the JSON of
/// `POST /api/routes/{name}/rollout`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub service: String,
    /// Default `["shadow 5m", "10% 5m", "50% 10m", "100%"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_diff_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ratio: Option<f64>,
    /// Signed so that a negative number gets a clear message instead of a type error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RawHooks>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_finish: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RawHeaderOps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RawHeaderOps>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderOps {
    /// Fields set (replacing any of the same name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Fields removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Tokens added per second.
    pub rps: f64,
    /// Tokens a bucket holds at most (requests let through at once).
    pub burst: u32,
    /// `client_ip` (default) or `header:<Name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
    /// Share of mirrored requests also sent to the secondary (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

/// A route's shadow candidates: written as one table (`shadow = { service = "v2" }`) or as a
/// list of them (`shadow = [{ service = "v2" }, { service = "v3", percent = 20 }]`), and
/// written back the same way (one candidate as a table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawShadows(pub Vec<RawShadow>);

impl RawShadows {
    pub fn one(shadow: RawShadow) -> RawShadows {
        RawShadows(vec![shadow])
    }

    /// None for no candidate at all.
    pub fn from_vec(list: Vec<RawShadow>) -> Option<RawShadows> {
        (!list.is_empty()).then_some(RawShadows(list))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RawShadow> {
        self.0.iter()
    }

    /// The candidate shadowing to `service`.
    pub fn get(&self, service: &str) -> Option<&RawShadow> {
        self.0.iter().find(|s| s.service == service)
    }

    /// True when written as a list (keys are then `shadow[i].…`).
    pub fn is_list(&self) -> bool {
        self.0.len() != 1
    }
}

impl Serialize for RawShadows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            list => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawShadows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawShadows, D::Error> {
        struct Shadows;
        impl<'de> serde::de::Visitor<'de> for Shadows {
            type Value = RawShadows;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a shadow table `{ service = ... }` or a list of them")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawShadows, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                RawShadow::deserialize(d).map(RawShadows::one)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawShadows, A::Error> {
                let d = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::<RawShadow>::deserialize(d).map(RawShadows)
            }
        }
        d.deserialize_any(Shadows)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub service: String,
    pub weight: f64,
    /// `cookie` (default), `header:<Name>`, or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unordered: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric_tolerance: Option<f64>,
    /// Significance thresholds (Diffy's): relative, default 0.20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_threshold: Option<f64>,
    /// Absolute, default 0.0003 (0.03 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_threshold: Option<f64>,
    /// Bytes of each response captured for comparison (default 1MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<String>,
    /// Findings without a secondary treat UUIDs, timestamps and token-like ids that differ on
    /// both sides as noise (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_noise: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRedact {
    /// Headers redacted besides those named like secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// JSON Pointer patterns whose values are redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Query and form parameter names and JSON keys (any depth) redacted besides those named
    /// like secrets; matched ignoring case and punctuation (`pin_code` = `pinCode`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// `[tls]`: the HTTPS listener, its certificates and automatic ones over ACME.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Option<String>,
    /// `[proxy].listen` answers 308 to `https://` (ACME challenges excepted).
    pub redirect_http: Option<bool>,
    #[serde(default)]
    pub certs: Vec<RawCertPair>,
    pub acme: Option<RawAcme>,
    /// Directory for the ACME account key and certificates (0600 files).
    pub storage: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertPair {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub email: Option<String>,
    pub directory: Option<String>,
    /// The root certificate of a private ACME CA (PEM), to trust its directory.
    pub ca: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}
