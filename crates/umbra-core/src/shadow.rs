//! Mirroring (data plane, off the primary path): sampling, the shadow (and secondary) requests,
//! comparison, and handing comparisons to the store through a bounded queue.
//!
//! A shadow job runs in its own task. The primary request never waits for it: the job waits for
//! copies of the request body and of the primary's response that the streaming tees hand over
//! when they finish. Every limit (in-flight slots per route, queue to the store) drops and
//! counts on overflow; nothing here can block or fail a primary response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::proxy::UpstreamBody;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use umbra_diff::{Comparison, Difference, Response, Verdict};

use crate::proxy::body::{collect_capped, Captured};
use crate::proxy::headers::{X_REQUEST_ID, X_UMBRA_SHADOW};
use crate::runtime::{now_ms, Runtime};
use crate::snapshot::Route;
use crate::upstream::Service;

/// The data plane's end of the queue to the store: `try_send` only.
pub struct ComparisonSink {
    tx: Option<mpsc::Sender<Comparison>>,
    dropped: AtomicU64,
    capacity: usize,
}

impl ComparisonSink {
    pub fn new(capacity: usize) -> (ComparisonSink, mpsc::Receiver<Comparison>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            ComparisonSink {
                tx: Some(tx),
                dropped: AtomicU64::new(0),
                capacity: capacity.max(1),
            },
            rx,
        )
    }

    /// A sink that drops everything (for runs without a store).
    pub fn disabled() -> ComparisonSink {
        ComparisonSink {
            tx: None,
            dropped: AtomicU64::new(0),
            capacity: 0,
        }
    }

    /// Queues a comparison, or drops and counts it when the queue is full or closed.
    pub fn submit(&self, c: Comparison) -> bool {
        let ok = self.tx.as_ref().is_some_and(|tx| tx.try_send(c).is_ok());
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn depth(&self) -> usize {
        self.tx
            .as_ref()
            .map_or(0, |tx| self.capacity - tx.capacity())
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Per-route noise models (Diffy's differential: candidate vs primary against secondary vs
/// primary), fed by every comparison.
#[derive(Default)]
pub struct NoiseModels {
    models: Mutex<HashMap<String, umbra_diff::NoiseModel>>,
}

impl NoiseModels {
    /// Field rows (rate, noise rate, significance) of one route's endpoint, from memory.
    pub fn field_rows(&self, route: &str, endpoint: &str) -> Vec<umbra_diff::FieldStat> {
        let models = self.models.lock().expect("noise lock");
        models
            .get(route)
            .map(|m| m.field_rows(endpoint))
            .unwrap_or_default()
    }

    fn observe_and_judge(
        &self,
        route: &str,
        endpoint: &str,
        thresholds: &umbra_diff::Thresholds,
        candidate: &[Difference],
        noise: Option<&[Difference]>,
    ) -> Verdict {
        let mut models = self.models.lock().expect("noise lock");
        let model = models
            .entry(route.to_string())
            .or_insert_with(|| umbra_diff::NoiseModel::new(*thresholds, Default::default()));
        model.observe(endpoint, candidate, noise);
        model.verdict(endpoint, candidate)
    }
}

/// Why a mirror candidate was not sent.
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    /// The route's in-flight limit is reached.
    Overflow,
    /// The request body is over `shadow.max_body`.
    BodyTooLarge,
    /// The client aborted the request body, or the primary failed.
    Incomplete,
    /// The shadow service has no healthy server.
    NoServer,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::BodyTooLarge => "body_too_large",
            DropReason::Incomplete => "incomplete",
            DropReason::NoServer => "no_server",
        }
    }
}

/// Everything a shadow job needs, taken from the primary request before it is forwarded.
pub struct ShadowJob {
    pub route: Arc<Route>,
    pub shadow: Arc<Service>,
    pub secondary: Option<Arc<Service>>,
    pub method: Method,
    /// Path and query as sent upstream (after `strip_prefix`).
    pub path_and_query: String,
    pub host: String,
    pub headers: HeaderMap,
    pub request_id: HeaderValue,
    pub started: Instant,
    /// The request body copy; None when the request has no body.
    pub request_body: Option<oneshot::Receiver<Captured>>,
    /// Status and headers of the primary response, then its body copy.
    pub primary_head: oneshot::Receiver<(u16, HeaderMap)>,
    pub primary_body: oneshot::Receiver<oneshot::Receiver<Captured>>,
    pub permit: OwnedSemaphorePermit,
}

/// How long a connection to a shadow server may take to open.
const SHADOW_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

enum Fetched {
    Ok(Response),
    Err(String),
}

async fn fetch(
    service: &Service,
    job_parts: &(Method, String, HeaderMap, Bytes),
    timeout: Duration,
    cap: usize,
) -> Fetched {
    let Some(server) = service.pick(None) else {
        return Fetched::Err(format!(
            "service `{}` has no healthy server",
            service.name()
        ));
    };
    let (method, pq, headers, body) = job_parts;
    let mut req = Request::new(if body.is_empty() {
        UpstreamBody::Empty
    } else {
        UpstreamBody::Full(Some(body.clone()))
    });
    *req.method_mut() = method.clone();
    *req.uri_mut() = match pq.parse() {
        Ok(u) => u,
        Err(_) => return Fetched::Err(format!("could not build the shadow request for `{pq}`")),
    };
    *req.headers_mut() = headers.clone();
    if !req.headers().contains_key(http::header::HOST) {
        if let Ok(v) = HeaderValue::from_str(&server.addr.authority) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    let _guard = server.begin();
    let start = Instant::now();
    // The worker's own upstream pool (shadow and primary requests to one server share idle
    // connections; each request still has a connection of its own).
    let work = async {
        let resp = crate::proxy::pool::send(&server.addr.authority, req, SHADOW_CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("{e}"))?;
        let (parts, body) = resp.into_parts();
        let (body, truncated) = collect_capped(body, cap)
            .await
            .map_err(|e| format!("{e}"))?;
        Ok::<_, String>((parts, body, truncated))
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Fetched::Err(format!("timed out after {} ms", timeout.as_millis())),
        Ok(Err(e)) => Fetched::Err(e),
        Ok(Ok((parts, body, truncated))) => Fetched::Ok(Response {
            status: parts.status.as_u16(),
            headers: header_list(&parts.headers),
            body,
            truncated,
            latency_us: start.elapsed().as_micros() as u64,
        }),
    }
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(h.len());
    for (k, v) in h {
        let value = match v.to_str() {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        };
        out.push((k.as_str().to_owned(), value));
    }
    out
}

/// Decodes `Content-Encoding` for comparison only; the header is dropped afterwards.
fn decoded(mut r: Response, cap: usize) -> Response {
    let enc = r.header("content-encoding").map(str::to_string);
    if let Some(enc) = enc {
        if !r.truncated {
            if let Ok(body) = umbra_diff::decode_body(Some(&enc), &r.body, cap) {
                r.body = body;
                r.headers.retain(|(k, _)| k != "content-encoding");
            }
        }
    }
    r
}

/// Runs one shadow job to its comparison.
pub async fn run(job: ShadowJob, rt: Arc<Runtime>) {
    let route = job.route.clone();
    let name = route.spec.name.clone();
    let spec = route
        .spec
        .shadow
        .clone()
        .expect("shadow jobs exist only for shadowed routes");
    let outcome = |o: &str| rt.metrics.shadow_request(&name, o);
    let dropped = |reason: DropReason| {
        route.stats.shadow_dropped.fetch_add(1, Ordering::Relaxed);
        rt.metrics.shadow_dropped(&name, reason.as_str());
    };

    // 1. The request body copy (the client streams it to the primary at its own pace).
    let body = match job.request_body {
        None => Bytes::new(),
        Some(rx) => match rx.await {
            Ok(c) if c.complete && !c.truncated => Bytes::from(c.body),
            Ok(c) if c.truncated => return dropped(DropReason::BodyTooLarge),
            _ => return dropped(DropReason::Incomplete),
        },
    };

    // 2. Shadow (and maybe secondary) requests, concurrently.
    // The request's headers as recorded (before the shadow marks are added), then the same
    // map (moved, not copied) for the mirrored requests.
    let request_headers = header_list(&job.headers);
    let mut headers = job.headers;
    headers.insert(X_UMBRA_SHADOW.clone(), HeaderValue::from_static("1"));
    headers.insert(X_REQUEST_ID.clone(), job.request_id.clone());
    let parts = (
        job.method.clone(),
        job.path_and_query.clone(),
        headers,
        body.clone(),
    );
    let cap = route.spec.compare.max_body;
    route.stats.shadow_sent.fetch_add(1, Ordering::Relaxed);
    let shadow_f = fetch(&job.shadow, &parts, spec.timeout, cap);
    let secondary_f = async {
        match &job.secondary {
            Some(s) => Some(fetch(s, &parts, spec.timeout, cap).await),
            None => None,
        }
    };
    let (shadow, secondary) = tokio::join!(shadow_f, secondary_f);

    // 3. The primary's response copy.
    let wait = spec.timeout + Duration::from_secs(30);
    let primary = tokio::time::timeout(wait, async {
        let (status, head) = job.primary_head.await.ok()?;
        let body_rx = job.primary_body.await.ok()?;
        let captured = body_rx.await.ok()?;
        captured.complete.then_some((status, head, captured))
    })
    .await
    .ok()
    .flatten();
    let Some((status, head, captured)) = primary else {
        return dropped(DropReason::Incomplete);
    };
    let primary_latency = captured
        .ended
        .map_or(0, |e| e.duration_since(job.started).as_micros() as u64);
    let primary = decoded(
        Response {
            status,
            headers: header_list(&head),
            body: captured.body,
            truncated: captured.truncated,
            latency_us: primary_latency,
        },
        cap,
    );

    // 4. Compare, judge, redact, queue.
    let path = job.path_and_query.split('?').next().unwrap_or("/");
    let endpoint = route.spec.endpoints.endpoint(job.method.as_str(), path);
    let engine = &route.spec.compare.engine;
    let (shadow_resp, error, differences) = match shadow {
        Fetched::Ok(r) => {
            let r = decoded(r, cap);
            let diffs = umbra_diff::compare(&primary, &r, engine);
            route.stats.shadow_latency.record_us(r.latency_us);
            outcome("ok");
            (Some(r), None, diffs)
        }
        Fetched::Err(e) => {
            outcome("error");
            (None, Some(e), Vec::new())
        }
    };
    let noise = match secondary {
        Some(Fetched::Ok(r)) => Some(umbra_diff::compare(&primary, &decoded(r, cap), engine)),
        _ => None,
    };
    let verdict = if shadow_resp.is_none() {
        Verdict::ShadowError
    } else {
        rt.noise.observe_and_judge(
            &name,
            &endpoint,
            &route.spec.compare.thresholds,
            &differences,
            noise.as_deref(),
        )
    };
    route.stats.comparisons.fetch_add(1, Ordering::Relaxed);
    if verdict == Verdict::Different {
        route.stats.different.fetch_add(1, Ordering::Relaxed);
    }
    rt.metrics.comparison(&name, verdict.as_str());

    let mut comparison = Comparison {
        id: 0,
        created_at_ms: now_ms(),
        route: name.clone(),
        endpoint,
        request_id: job.request_id.to_str().unwrap_or("").to_string(),
        verdict,
        request: umbra_diff::Request {
            method: job.method.to_string(),
            uri: job.path_and_query.clone(),
            host: job.host.clone(),
            headers: request_headers,
            body: body.to_vec(),
        },
        primary,
        shadow: shadow_resp,
        error,
        differences,
        noise,
    };
    // Nothing leaves the data plane unredacted.
    let redact = &route.spec.redact;
    umbra_diff::redact_comparison(&mut comparison, &redact.headers, &redact.paths);
    rt.sink.submit(comparison);
    drop(job.permit);
}
