//! What both backends share between a `Comparison` and its rows: the column values, the
//! `detail` JSON, the aggregate deltas of a batch (`endpoint_stats`, `field_stats`),
//! `field_key` normalization, timestamps, and turning columns back into a `Comparison`.
//! Control-plane side, pure functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use umbra_diff::{Comparison, DiffKind, Difference, Observation, Request, Response, Verdict};

use crate::types::{ComparisonSummary, Totals};
use crate::StoreError;

/// The normalized field path counted in `field_stats`: the noise models' own key, so the
/// store's field table and the in-memory judge count the same fields.
pub use umbra_diff::field_key;

/// The part of a comparison stored only for `full` rows. Status and latency are repeated
/// inside the responses so the blob alone is a complete record.
#[derive(Serialize)]
struct DetailRef<'a> {
    request: &'a Request,
    primary: &'a Response,
    shadow: &'a Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: &'a Option<String>,
    noise: &'a Option<Vec<Difference>>,
}

#[derive(Deserialize)]
struct Detail {
    request: Request,
    primary: Response,
    shadow: Option<Response>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    noise: Option<Vec<Difference>>,
}

/// One `comparisons` row ready to insert (the id is assigned by the database). Owns its values
/// so it can move to a blocking thread without cloning bodies.
pub(crate) struct NewRow {
    pub created_at_ms: i64,
    pub route: String,
    pub candidate: String,
    pub endpoint: String,
    pub method: String,
    pub uri: String,
    pub request_id: String,
    pub verdict: &'static str,
    pub primary_status: i32,
    pub shadow_status: Option<i32>,
    pub primary_latency_us: i64,
    pub shadow_latency_us: Option<i64>,
    pub difference_count: i32,
    pub differences: String,
    pub detail: Option<String>,
    /// The noise sample's differences (secondary vs primary), kept beside `detail` so the
    /// findings can be rebuilt from columns.
    pub noise: Option<String>,
    /// The ids of the causes (findings) the comparison shows, for `comparison_causes`.
    pub causes: Vec<String>,
}

impl NewRow {
    pub fn new(c: &Comparison, full: bool) -> Result<Self, StoreError> {
        let differences = encode_json("differences", &c.differences)?;
        let detail = if full {
            let d = DetailRef {
                request: &c.request,
                primary: &c.primary,
                shadow: &c.shadow,
                error: &c.error,
                noise: &c.noise,
            };
            Some(encode_json("comparison detail", &d)?)
        } else {
            None
        };
        let noise = c
            .noise
            .as_ref()
            .map(|n| encode_json("noise differences", n))
            .transpose()?;
        let causes =
            umbra_diff::cause_ids(&c.route, &c.candidate, &Observation::from_comparison(c));
        Ok(NewRow {
            created_at_ms: c.created_at_ms,
            route: c.route.clone(),
            candidate: c.candidate.clone(),
            endpoint: c.endpoint.clone(),
            method: c.request.method.clone(),
            uri: c.request.uri.clone(),
            request_id: c.request_id.clone(),
            verdict: c.verdict.as_str(),
            primary_status: i32::from(c.primary.status),
            shadow_status: c.shadow.as_ref().map(|s| i32::from(s.status)),
            primary_latency_us: clamp_u64(c.primary.latency_us),
            shadow_latency_us: c.shadow.as_ref().map(|s| clamp_u64(s.latency_us)),
            difference_count: i32::try_from(c.differences.len()).unwrap_or(i32::MAX),
            differences,
            detail,
            noise,
            causes,
        })
    }
}

fn clamp_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Encodes a whole batch: `full` rows first, then `counted_only`, the order ids are returned in.
pub(crate) fn encode_batch(
    full: &[Comparison],
    counted_only: &[Comparison],
) -> Result<Vec<NewRow>, StoreError> {
    let mut rows = Vec::with_capacity(full.len() + counted_only.len());
    for c in full {
        rows.push(NewRow::new(c, true)?);
    }
    for c in counted_only {
        rows.push(NewRow::new(c, false)?);
    }
    Ok(rows)
}

/// How one batch changes `endpoint_stats` and `field_stats`. Keys are sorted so concurrent
/// writers (several replicas on one PostgreSQL) take row locks in the same order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AggregateDelta {
    pub endpoints: BTreeMap<(String, String), Totals>,
    /// (route, endpoint, field_key(path), kind) → (count, noise_count)
    pub fields: BTreeMap<(String, String, String, DiffKind), (u64, u64)>,
}

impl AggregateDelta {
    pub fn of<'a>(all: impl IntoIterator<Item = &'a Comparison>) -> Self {
        let mut d = AggregateDelta::default();
        let mut seen: Vec<(String, DiffKind)> = Vec::new();
        for c in all {
            d.endpoints
                .entry((c.route.clone(), c.endpoint.clone()))
                .or_default()
                .count(c.verdict, c.noise.is_some());
            // Each (field, kind) counts once per comparison even when several indexes of one
            // array differ.
            seen.clear();
            for diff in &c.differences {
                let k = (field_key(&diff.path), diff.kind);
                if !seen.contains(&k) {
                    seen.push(k);
                }
            }
            for (path, kind) in seen.drain(..) {
                d.fields
                    .entry((c.route.clone(), c.endpoint.clone(), path, kind))
                    .or_default()
                    .0 += 1;
            }
            if let Some(noise) = &c.noise {
                for diff in noise {
                    let k = (field_key(&diff.path), diff.kind);
                    if !seen.contains(&k) {
                        seen.push(k);
                    }
                }
                for (path, kind) in seen.drain(..) {
                    d.fields
                        .entry((c.route.clone(), c.endpoint.clone(), path, kind))
                        .or_default()
                        .1 += 1;
                }
            }
        }
        d
    }
}

const ISO_MS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Unix milliseconds as fixed-width ISO-8601 UTC text (`2026-11-23T14:00:00.123Z`), which sorts
/// the same as the instant. Years outside 0000–9999 are clamped.
pub(crate) fn ms_to_iso(ms: i64) -> String {
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN, MAX);
    let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    dt.format(ISO_MS)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

pub(crate) fn iso_to_ms(column: &'static str, s: &str) -> Result<i64, StoreError> {
    let bad = || StoreError::BadValue {
        column,
        value: s.to_owned(),
    };
    let dt = PrimitiveDateTime::parse(s, ISO_MS).map_err(|_| bad())?;
    let nanos = dt.assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000)).map_err(|_| bad())
}

pub(crate) fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn parse_verdict(s: &str) -> Result<Verdict, StoreError> {
    Verdict::parse(s).ok_or_else(|| StoreError::BadValue {
        column: "verdict",
        value: s.to_owned(),
    })
}

pub(crate) fn parse_kind(s: &str) -> Result<DiffKind, StoreError> {
    DiffKind::parse(s).ok_or_else(|| StoreError::BadValue {
        column: "kind",
        value: s.to_owned(),
    })
}

pub(crate) fn status(column: &'static str, v: i64) -> Result<u16, StoreError> {
    u16::try_from(v).map_err(|_| StoreError::BadValue {
        column,
        value: v.to_string(),
    })
}

pub(crate) fn unsigned(column: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::BadValue {
        column,
        value: v.to_string(),
    })
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Decode { what, source })
}

pub(crate) fn encode_json<T: Serialize + ?Sized>(
    what: &'static str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode { what, source })
}

/// A `comparisons` row as read back (both backends produce this, then share the rest).
pub(crate) struct StoredRow {
    pub summary: ComparisonSummary,
    pub differences: String,
    pub detail: Option<String>,
}

impl StoredRow {
    /// Rebuilds the comparison. A counted-only row (no `detail`) comes back with the columns
    /// filled in and everything else empty: no host, headers or bodies, no error, no noise.
    pub fn into_comparison(self) -> Result<Comparison, StoreError> {
        let s = self.summary;
        let differences: Vec<Difference> = decode_json("differences", &self.differences)?;
        let (request, primary, shadow, error, noise) = match self.detail {
            Some(text) => {
                let d: Detail = decode_json("comparison detail", &text)?;
                (d.request, d.primary, d.shadow, d.error, d.noise)
            }
            None => (
                Request {
                    method: s.method.clone(),
                    uri: s.uri.clone(),
                    ..Request::default()
                },
                Response {
                    status: s.primary_status,
                    latency_us: s.primary_latency_us,
                    ..Response::default()
                },
                s.shadow_status.map(|status| Response {
                    status,
                    latency_us: s.shadow_latency_us.unwrap_or(0),
                    ..Response::default()
                }),
                None,
                None,
            ),
        };
        Ok(Comparison {
            id: s.id,
            created_at_ms: s.created_at_ms,
            route: s.route,
            candidate: s.candidate,
            endpoint: s.endpoint,
            request_id: s.request_id,
            verdict: s.verdict,
            request,
            primary,
            shadow,
            error,
            differences,
            noise,
        })
    }
}

/// A comparison rebuilt for replay: its columns, differences and noise sample (no bodies).
pub(crate) fn replayed(
    summary: ComparisonSummary,
    differences: String,
    noise: Option<String>,
) -> Result<Comparison, StoreError> {
    let mut c = StoredRow {
        summary,
        differences,
        detail: None,
    }
    .into_comparison()?;
    c.noise = noise
        .map(|n| decode_json("noise differences", &n))
        .transpose()?;
    Ok(c)
}

/// Masks the password of a store URL (`postgres://user:***@host/db`, or `password=***` in a
/// key=value connection string) so it can be logged and shown.
pub fn mask_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // userinfo ends at the last '@' before the first '/', '?' or '#'
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let masked = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***{}", &authority[at..]),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        let tail = mask_password_params(&rest[auth_end..]);
        return format!("{scheme}://{masked}{tail}");
    }
    mask_password_params(url)
}

/// Masks `password=...` in a query string or key=value connection string.
fn mask_password_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        let boundary_ok = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ' | b'\t');
        let start = i + "password=".len();
        out.push_str(&rest[..start]);
        if !boundary_ok {
            rest = &rest[start..];
            continue;
        }
        let value = &rest[start..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            // quoted key=value: up to the closing quote
            quoted.find('\'').map(|j| j + 2).unwrap_or(value.len())
        } else {
            value.find(['&', ' ', '\t', '#']).unwrap_or(value.len())
        };
        out.push_str("***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(path: &str, kind: DiffKind) -> Difference {
        Difference {
            path: path.into(),
            kind,
            primary: None,
            candidate: None,
        }
    }

    fn comparison(
        verdict: Verdict,
        diffs: Vec<Difference>,
        noise: Option<Vec<Difference>>,
    ) -> Comparison {
        Comparison {
            id: 0,
            created_at_ms: 0,
            route: "api".into(),
            candidate: "v2".into(),
            endpoint: "GET /x".into(),
            request_id: "r".into(),
            verdict,
            request: Request::default(),
            primary: Response::default(),
            shadow: Some(Response::default()),
            error: None,
            differences: diffs,
            noise,
        }
    }

    #[test]
    fn field_key_stars_numeric_segments_only() {
        assert_eq!(field_key("/items/0/price"), "/items/*/price");
        assert_eq!(field_key("/items/12/tags/3"), "/items/*/tags/*");
        assert_eq!(field_key("/a1/1a/007"), "/a1/1a/*");
        assert_eq!(field_key("/"), "/");
        assert_eq!(field_key("/a//b"), "/a//b");
        assert_eq!(field_key("status"), "status");
        assert_eq!(field_key("header:x-1"), "header:x-1");
        assert_eq!(field_key(""), "");
    }

    #[test]
    fn aggregates_count_each_field_once_per_comparison() {
        let a = comparison(
            Verdict::Different,
            vec![
                diff("/items/0/price", DiffKind::Changed),
                diff("/items/1/price", DiffKind::Changed),
                diff("/items/1/price", DiffKind::Type),
            ],
            Some(vec![
                diff("/items/3/price", DiffKind::Changed),
                diff("/ts", DiffKind::Changed),
            ]),
        );
        let b = comparison(Verdict::Same, vec![], None);
        let d = AggregateDelta::of([&a, &b]);
        let t = d.endpoints[&("api".to_string(), "GET /x".to_string())];
        assert_eq!((t.total, t.noise_total, t.same, t.different), (2, 1, 1, 1));
        let key = |p: &str, k| ("api".to_string(), "GET /x".to_string(), p.to_string(), k);
        assert_eq!(d.fields[&key("/items/*/price", DiffKind::Changed)], (1, 1));
        assert_eq!(d.fields[&key("/items/*/price", DiffKind::Type)], (1, 0));
        assert_eq!(d.fields[&key("/ts", DiffKind::Changed)], (0, 1));
        assert_eq!(d.fields.len(), 3);
    }

    #[test]
    fn iso_roundtrip_and_order() {
        for ms in [0, 1, 999, 1_795_442_400_123, -1, -86_400_001] {
            let s = ms_to_iso(ms);
            assert_eq!(iso_to_ms("t", &s).unwrap(), ms, "{s}");
        }
        assert_eq!(ms_to_iso(1_795_442_400_123), "2026-11-23T14:00:00.123Z");
        assert!(ms_to_iso(999) < ms_to_iso(1000));
        assert!(iso_to_ms("t", "yesterday").is_err());
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("postgres://umbra:s3cr@t@db:5432/umbra"),
            "postgres://umbra:***@db:5432/umbra"
        );
        assert_eq!(
            mask_url("postgres://umbra@db/umbra"),
            "postgres://umbra@db/umbra"
        );
        assert_eq!(
            mask_url("postgresql://db/umbra?user=u&password=x&sslmode=disable"),
            "postgresql://db/umbra?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            mask_url("host=db password='a b' user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(mask_url("sqlite://umbra.db"), "sqlite://umbra.db");
    }

    #[test]
    fn counted_only_row_rebuilds_from_columns() {
        let c = comparison(Verdict::Same, vec![], None);
        let row = NewRow::new(&c, false).unwrap();
        assert!(row.detail.is_none());
        let back = StoredRow {
            summary: ComparisonSummary {
                id: 7,
                created_at_ms: 5,
                route: "api".into(),
                candidate: "v2".into(),
                endpoint: "GET /x".into(),
                method: "GET".into(),
                uri: "/x?a=1".into(),
                request_id: "r".into(),
                verdict: Verdict::Same,
                primary_status: 200,
                shadow_status: Some(201),
                primary_latency_us: 10,
                shadow_latency_us: Some(20),
                difference_count: 0,
                full: false,
            },
            differences: row.differences,
            detail: None,
        }
        .into_comparison()
        .unwrap();
        assert_eq!(back.request.uri, "/x?a=1");
        assert_eq!(back.shadow.unwrap().status, 201);
        assert!(back.primary.body.is_empty());
    }
}
