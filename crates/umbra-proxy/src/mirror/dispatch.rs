//! Mirroring (data plane, off the primary path): sampling, the shadow (and secondary) requests,
//! comparison, and handing comparisons to the store through a bounded queue.
//!
//! A shadow job runs in its own task. The primary request never waits for it: the job waits for
//! copies of the request body and of the primary's response that the streaming tees hand over
//! when they finish, then hands both responses to the compare threads (`comparer`). Every limit
//! (in-flight slots per route, the compare queue, the queue to the store) drops and counts on
//! overflow; nothing here can block or fail a primary response.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use umbra_core::snapshot::Route;
use umbra_core::upstream::Service;

use super::compare::{CompareJob, Fetched};
use crate::client::{self, SendError};
use crate::wire::body::{collect_capped, BoxError, Captured};
use crate::wire::headers::{Added, HOST, X_REQUEST_ID, X_UMBRA_SHADOW};
use crate::Proxy;

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
    /// The compare threads are this far behind: the responses were fetched but not compared.
    CompareBacklog,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::BodyTooLarge => "body_too_large",
            DropReason::Incomplete => "incomplete",
            DropReason::NoServer => "no_server",
            DropReason::CompareBacklog => "compare_backlog",
        }
    }
}

/// One candidate a request is mirrored to: its place in the route's `shadows`, its service and
/// the in-flight slot it holds until its comparison is built.
pub struct Candidate {
    pub index: usize,
    pub service: Arc<Service>,
    pub permit: OwnedSemaphorePermit,
}

/// A request's candidates. A Vec: inline storage (smallvec) was measured and saved nothing
/// worth a dependency (bench/RESULTS.md, 2026-12-04).
pub type Candidates = Vec<Candidate>;

/// Everything a shadow job needs, taken from the primary request before it is forwarded. One
/// job serves all the candidates a request is mirrored to: the request body and the primary's
/// answer are copied once, whatever their number.
pub struct ShadowJob {
    pub route: Arc<Route>,
    pub candidates: Candidates,
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
}

/// Why a shadow (or secondary) request has no response to compare; stored as the
/// comparison's `shadow_error`.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("service `{0}` has no healthy server")]
    NoServer(String),
    #[error("could not build the shadow request for `{0}`")]
    BadPath(String),
    #[error("timed out after {0} ms")]
    Timeout(u128),
    #[error(transparent)]
    Send(SendError),
    #[error("the shadow's response body failed: {0}")]
    Body(#[source] BoxError),
}

/// How long a connection to a shadow server may take to open.
const SHADOW_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The parts of the mirrored request every fetch shares.
#[derive(Clone)]
struct Mirrored {
    method: Method,
    path_and_query: String,
    /// The request's headers without the shadow marks (each fetch writes those as overrides).
    headers: HeaderMap,
    request_id: HeaderValue,
    body: Bytes,
}

async fn fetch(
    service: &Service,
    m: &Mirrored,
    timeout: Duration,
    cap: usize,
) -> Result<Fetched, MirrorError> {
    let Some(server) = service.pick(None) else {
        return Err(MirrorError::NoServer(service.name().to_string()));
    };
    // The path came from a parsed URI; a control character or space would break the request
    // line, so refuse rather than send it.
    if m.path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(MirrorError::BadPath(m.path_and_query.clone()));
    }
    // The request's own headers are written as they are, with the shadow marks (and a Host
    // when it had none) in place of any of the same name: no per-fetch copy of the map.
    let mark = HeaderValue::from_static("1");
    let host = match m.headers.contains_key(http::header::HOST) {
        true => None,
        false => HeaderValue::from_str(&server.addr.authority).ok(),
    };
    let mut added = Added::new();
    added.push(&X_UMBRA_SHADOW, &mark);
    added.push(&X_REQUEST_ID, &m.request_id);
    if let Some(h) = &host {
        added.push(&HOST, h);
    }
    let _guard = server.begin();
    let start = Instant::now();
    // The worker's own upstream pool (shadow and primary requests to one server share idle
    // connections; each request still has a connection of its own).
    let timed_out = || MirrorError::Timeout(timeout.as_millis());
    let work = async {
        let dest = client::Dest {
            addr: &server.addr,
            ca: service.spec.ca.as_ref(),
        };
        let resp = client::send_buffered(
            dest,
            &m.method,
            &m.path_and_query,
            &m.headers,
            &added,
            &m.body,
            SHADOW_CONNECT_TIMEOUT,
            tokio::time::Instant::now() + timeout,
        )
        .await
        .map_err(|e| match e.is_timeout() {
            true => timed_out(),
            false => MirrorError::Send(e),
        })?;
        let (resp, fields) = resp;
        let (mut parts, body) = resp.into_parts();
        fields.merge_into(&mut parts.headers, false);
        let got = collect_capped(body, cap).await.map_err(MirrorError::Body)?;
        with_trailers(&mut parts.headers, got.trailers);
        Ok::<_, MirrorError>((parts, got.body, got.truncated))
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(timed_out()),
        Ok(Err(e)) => Err(e),
        Ok(Ok((parts, body, truncated))) => Ok(Fetched {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            truncated,
            latency_us: start.elapsed().as_micros() as u64,
        }),
    }
}

/// A response's trailers compared as its fields (gRPC's `grpc-status` and `grpc-message`
/// arrive there), after the head's.
fn with_trailers(headers: &mut HeaderMap, trailers: Option<HeaderMap>) {
    for (name, value) in trailers.into_iter().flatten() {
        if let Some(name) = name {
            headers.append(name, value);
        }
    }
}

/// Runs one shadow job: waits for the request body copy, sends the request to each candidate
/// (and maybe the secondary) at once, waits for the primary's response copy, and hands one
/// comparison per candidate to the compare threads.
pub async fn run(job: ShadowJob, proxy: Arc<Proxy>) {
    let rt = &proxy.runtime;
    let route = job.route.clone();
    let shadows = &route.spec.shadows;
    let name = &route.spec.name;
    let dropped = |reason: DropReason| count_drop(&proxy, &route, reason);
    let drop_all = |n: usize, reason: DropReason| (0..n).for_each(|_| dropped(reason));
    let mut candidates = job.candidates;

    // 1. The request body copy (the client streams it to the primary at its own pace).
    let body = match job.request_body {
        None => Bytes::new(),
        Some(rx) => match rx.await {
            Ok(c) if c.complete && !c.truncated => Bytes::from(c.body),
            Ok(c) if c.truncated => return drop_all(candidates.len(), DropReason::BodyTooLarge),
            _ => return drop_all(candidates.len(), DropReason::Incomplete),
        },
    };
    // The copy was capped at the largest candidate's `max_body`; a smaller cap drops its own.
    candidates.retain(|c| {
        let fits = body.len() as u64 <= shadows[c.index].max_body;
        if !fits {
            dropped(DropReason::BodyTooLarge);
        }
        fits
    });
    if candidates.is_empty() {
        return;
    }

    // 2. Candidate (and maybe secondary) requests, concurrently.
    let mirrored = Mirrored {
        method: job.method,
        path_and_query: job.path_and_query,
        headers: job.headers,
        request_id: job.request_id,
        body,
    };
    let cap = route.spec.compare.max_body;
    let longest = candidates.iter().map(|c| shadows[c.index].timeout).max();
    let longest = longest.unwrap_or_default();
    let n = candidates.len() as u64;
    route.stats.shadow_sent.fetch_add(n, Ordering::Relaxed);
    // Boxed, and built inside the box: the fetches (request, timeout, response body) are most
    // of this future's size, and the whole future is copied each time it moves.
    let (answers, secondary) = Box::pin(async {
        let timeout = |c: &Candidate| shadows[c.index].timeout;
        // Most routes have one candidate: awaited as it is, without join_all's bookkeeping.
        let each = async {
            match candidates.as_slice() {
                [c] => vec![fetch(&c.service, &mirrored, timeout(c), cap).await],
                many => {
                    let each = many
                        .iter()
                        .map(|c| fetch(&c.service, &mirrored, timeout(c), cap));
                    futures_util::future::join_all(each).await
                }
            }
        };
        let secondary_f = async {
            match &job.secondary {
                Some(s) => Some(fetch(s, &mirrored, longest, cap).await),
                None => None,
            }
        };
        tokio::join!(each, secondary_f)
    })
    .await;
    for a in &answers {
        rt.metrics
            .shadow_request(name, if a.is_ok() { "ok" } else { "error" });
    }

    // 3. The primary's response copy.
    let wait = longest + Duration::from_secs(30);
    let copy = primary_copy(job.primary_head, job.primary_body, job.started);
    let Some(primary) = tokio::time::timeout(wait, copy).await.ok().flatten() else {
        return drop_all(candidates.len(), DropReason::Incomplete);
    };

    // 4. Compare on the compare threads, one job per candidate.
    let compare = Compared {
        mirrored,
        host: job.host,
        primary,
        secondary: secondary.and_then(Result::ok),
    };
    submit(&proxy, &route, compare, candidates.into_iter().zip(answers));
}

/// The primary's answer as the tees copied it (its trailers among its fields); None when it
/// did not complete.
async fn primary_copy(
    head: oneshot::Receiver<(u16, HeaderMap)>,
    body: oneshot::Receiver<oneshot::Receiver<Captured>>,
    started: Instant,
) -> Option<Fetched> {
    let (status, mut headers) = head.await.ok()?;
    let mut captured = body.await.ok()?.await.ok()?;
    if !captured.complete {
        return None;
    }
    with_trailers(&mut headers, captured.trailers.take());
    let latency = captured.ended.map(|e| e.duration_since(started));
    Some(Fetched {
        status,
        headers,
        body: captured.body,
        truncated: captured.truncated,
        latency_us: latency.map_or(0, |d| d.as_micros() as u64),
    })
}

/// A dropped mirror request, counted on the route and in the metrics.
fn count_drop(proxy: &Proxy, route: &Route, reason: DropReason) {
    route.stats.shadow_dropped.fetch_add(1, Ordering::Relaxed);
    let name = &route.spec.name;
    proxy.runtime.metrics.shadow_dropped(name, reason.as_str());
}

/// What every candidate's comparison shares: the request, the primary's and the secondary's
/// answers.
#[derive(Clone)]
struct Compared {
    mirrored: Mirrored,
    host: String,
    primary: Fetched,
    secondary: Option<Fetched>,
}

/// Queues one comparison per candidate (the shared parts copied for all but the last).
fn submit(
    proxy: &Arc<Proxy>,
    route: &Arc<Route>,
    shared: Compared,
    answers: impl Iterator<Item = (Candidate, Result<Fetched, MirrorError>)>,
) {
    let workers = proxy.runtime.load().config.proxy.workers;
    let comparer = proxy.mirror.comparer(workers);
    let mut answers = answers.peekable();
    while let Some(answer) = answers.next() {
        if answers.peek().is_none() {
            return queue(proxy, route, comparer, shared, answer);
        }
        queue(proxy, route, comparer, shared.clone(), answer);
    }
}

/// Hands one candidate's comparison to the compare threads (dropped and counted when full).
fn queue(
    proxy: &Arc<Proxy>,
    route: &Arc<Route>,
    comparer: &super::Comparer,
    c: Compared,
    (candidate, shadow): (Candidate, Result<Fetched, MirrorError>),
) {
    let job = CompareJob {
        proxy: proxy.clone(),
        route: route.clone(),
        candidate: candidate.service.name().to_string(),
        method: c.mirrored.method,
        path_and_query: c.mirrored.path_and_query,
        host: c.host,
        request_headers: c.mirrored.headers,
        request_id: c.mirrored.request_id,
        request_body: c.mirrored.body,
        primary: c.primary,
        shadow,
        secondary: c.secondary,
        permit: candidate.permit,
    };
    if !comparer.submit(job) {
        count_drop(proxy, route, DropReason::CompareBacklog);
    }
}
