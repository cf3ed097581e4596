//! The compare stage: threads of their own, off the proxy workers, that turn fetched responses
//! into judged, redacted comparisons and queue them for the store.
//!
//! Comparing is the CPU-heavy part of mirroring (decoding, header lists, the diff, the noise
//! model, redaction). Done on the proxy workers it stole their time in bursts: a route's shadow
//! slots tend to fill together and so finish together, and the workers then compared a few
//! hundred responses back to back while primary requests waited. Here the kernel schedules the
//! compare threads like any other thread, so a burst competes for a share of the CPU instead of
//! holding a worker. A job keeps its route's shadow slot until it is compared, so the slots
//! still bound the memory held by mirrored requests; the queue is bounded too and drops (and
//! counts) when full.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tokio::sync::OwnedSemaphorePermit;

use umbra_diff::{Comparison, Response, Verdict};

use umbra_core::runtime::now_ms;
use umbra_core::snapshot::Route;

use super::{FindingsJudge, MirrorError};
use crate::Proxy;

/// How many fetched-but-not-yet-compared jobs may wait for a compare thread.
const QUEUE: usize = 4096;

/// A response as fetched (or captured), before it is turned into the diff model.
#[derive(Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub truncated: bool,
    pub latency_us: u64,
}

/// Everything one comparison needs, handed over by the shadow task once both sides are in.
pub struct CompareJob {
    pub proxy: Arc<Proxy>,
    pub route: Arc<Route>,
    /// The candidate's service (the comparison's `candidate`).
    pub candidate: String,
    pub method: Method,
    pub path_and_query: String,
    pub host: String,
    /// The request's headers as the primary got them (no shadow marks).
    pub request_headers: HeaderMap,
    pub request_id: HeaderValue,
    pub request_body: Bytes,
    pub primary: Fetched,
    /// The shadow's response, or why there is none.
    pub shadow: Result<Fetched, MirrorError>,
    /// The secondary's response, when this request was sent to one and it answered.
    pub secondary: Option<Fetched>,
    /// The route's shadow slot, released once the comparison is built (or the job dropped).
    pub permit: OwnedSemaphorePermit,
}

/// The sending end of the compare queue; the threads start with the first job.
pub struct Comparer {
    tx: crossbeam_channel::Sender<Box<CompareJob>>,
}

impl Comparer {
    /// Starts `threads` compare threads reading one bounded queue.
    pub fn spawn(threads: usize) -> Comparer {
        Comparer::with_queue(threads.max(1), QUEUE, compare).0
    }

    /// Threads running `work` on each job. Also returns the queue's reading end: with
    /// `threads` = 0 (tests), holding it keeps the queue open while nothing takes jobs off it.
    fn with_queue(
        threads: usize,
        queue: usize,
        work: fn(CompareJob),
    ) -> (Comparer, crossbeam_channel::Receiver<Box<CompareJob>>) {
        let (tx, rx) = crossbeam_channel::bounded::<Box<CompareJob>>(queue);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("umbra-compare-{i}"))
                .spawn(move || {
                    // Ends when the runtime (and with it the sender) is dropped.
                    for job in rx {
                        // A bug hit by one comparison loses that comparison (its slot is
                        // freed as it unwinds), not the thread and every comparison after it.
                        let run = std::panic::AssertUnwindSafe(|| work(*job));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a comparison panicked and was dropped");
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a compare thread");
            }
        }
        (Comparer { tx }, rx)
    }

    /// Queues a job; false (and the job dropped, its slot freed) when the queue is full or no
    /// compare thread runs.
    pub fn submit(&self, job: CompareJob) -> bool {
        self.tx.try_send(Box::new(job)).is_ok()
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

/// The diff model's response, with `Content-Encoding` decoded for comparison only (the header
/// is dropped once the body is decoded).
fn response(f: Fetched, cap: usize) -> Response {
    let mut r = Response {
        status: f.status,
        headers: header_list(&f.headers),
        body: f.body,
        truncated: f.truncated,
        latency_us: f.latency_us,
    };
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

/// Compares, judges, redacts and queues one job for the store.
fn compare(job: CompareJob) {
    let CompareJob {
        proxy,
        route,
        candidate,
        method,
        path_and_query,
        host,
        request_headers,
        request_id,
        request_body,
        primary,
        shadow,
        secondary,
        permit,
    } = job;
    let rt = &proxy.runtime;
    let name = &route.spec.name;
    let cap = route.spec.compare.max_body;
    let engine = &route.spec.compare.engine;
    let primary = response(primary, cap);
    let path = path_and_query.split('?').next().unwrap_or("/");
    let endpoint = route.spec.endpoints.endpoint(method.as_str(), path);

    let (shadow, error, differences) = match shadow {
        Ok(f) => {
            let r = response(f, cap);
            let diffs = umbra_diff::compare(&primary, &r, engine);
            route.stats.shadow_latency.record_us(r.latency_us);
            (Some(r), None, diffs)
        }
        Err(e) => (None, Some(e.to_string()), Vec::new()),
    };
    let noise = secondary.map(|f| umbra_diff::compare(&primary, &response(f, cap), engine));
    let verdict = if shadow.is_none() {
        Verdict::ShadowError
    } else {
        proxy.mirror.noise.observe_and_judge(
            (name, &candidate),
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
    rt.metrics.comparison(name, verdict.as_str());
    if route.recorder.is_some() {
        let fields = if verdict == Verdict::Different {
            proxy
                .mirror
                .noise
                .unexplained((name, &candidate), &endpoint, &differences)
        } else {
            Vec::new()
        };
        let sides = (&primary, shadow.as_ref());
        record_evidence(&route, &candidate, sides, verdict, &fields);
    }

    let mut comparison = Comparison {
        id: 0,
        created_at_ms: now_ms(),
        route: name.clone(),
        candidate,
        endpoint,
        request_id: request_id.to_str().unwrap_or("").to_string(),
        verdict,
        request: umbra_diff::Request {
            method: method.to_string(),
            uri: path_and_query,
            host,
            headers: header_list(&request_headers),
            body: request_body.to_vec(),
        },
        primary,
        shadow,
        error,
        differences,
        noise,
    };
    // Nothing leaves the data plane unredacted.
    route.spec.redact.apply(&mut comparison);
    // Findings see the comparison as stored, so its cause ids match the store's tags.
    let judge = FindingsJudge {
        thresholds: route.spec.compare.thresholds,
        typed_noise: route.spec.compare.typed_noise,
    };
    let obs = umbra_diff::Observation::from_comparison(&comparison);
    (proxy.mirror.findings).observe(name, &comparison.candidate, judge, &obs);
    // The slot is freed before the comparison is handed on: from here the store queue's own
    // bound holds it, and whoever receives it sees the slot already free.
    drop(permit);
    proxy.mirror.sink.submit(comparison);
}

/// Feeds a rollout's recorder when the comparison is of its candidate; `fields` are the
/// differences noise does not explain.
fn record_evidence(
    route: &Route,
    candidate: &str,
    (primary, shadow): (&Response, Option<&Response>),
    verdict: Verdict,
    fields: &[String],
) {
    let Some(rec) = &route.recorder else { return };
    if rec.candidate != candidate {
        return;
    }
    rec.record_comparison(
        (primary.status, primary.latency_us),
        shadow.map(|s| (s.status, s.latency_us)),
        verdict == Verdict::Different,
        fields.iter().map(String::as_str),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::ComparisonSink;
    use std::time::Duration;
    use tokio::sync::Semaphore;
    use umbra_core::config::Config;
    use umbra_core::telemetry::Metrics;
    use umbra_core::Runtime;

    fn runtime() -> (Arc<Proxy>, tokio::sync::mpsc::Receiver<Comparison>) {
        let text = r#"
[proxy]
listen = "127.0.0.1:0"
[services.v1]
servers = ["http://127.0.0.1:9"]
[services.v2]
servers = ["http://127.0.0.1:9"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "v1"
shadow = { service = "v2", percent = 100 }
"#;
        let config = Config::parse(text, "test.toml", &|_| None).expect("config");
        let (sink, rx) = ComparisonSink::new(16);
        let (events, _) = tokio::sync::mpsc::channel(16);
        let runtime = Runtime::new(config, Arc::new(Metrics::new()), events);
        (Proxy::new(runtime, Arc::new(sink)), rx)
    }

    fn json(body: &str) -> Fetched {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Fetched {
            status: 200,
            headers,
            body: body.as_bytes().to_vec(),
            truncated: false,
            latency_us: 10,
        }
    }

    fn job(rt: &Arc<Proxy>, slots: &Arc<Semaphore>, shadow_body: &str) -> CompareJob {
        let route = rt.runtime.snapshot().route("api").expect("route").clone();
        let mut request_headers = HeaderMap::new();
        request_headers.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        CompareJob {
            proxy: rt.clone(),
            route,
            candidate: "v2".into(),
            method: Method::GET,
            path_and_query: "/users/42?x=1".into(),
            host: "example.test".into(),
            request_headers,
            request_id: HeaderValue::from_static("req-1"),
            request_body: Bytes::new(),
            primary: json(r#"{"id":42,"name":"a"}"#),
            shadow: Ok(json(shadow_body)),
            secondary: None,
            permit: slots.clone().try_acquire_owned().expect("a free slot"),
        }
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<Comparison>) -> Comparison {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a comparison reaches the store queue within 5 s")
            .expect("the store queue is open")
    }

    #[tokio::test]
    async fn a_compare_thread_judges_redacts_queues_and_frees_the_slot() {
        let (rt, mut rx) = runtime();
        let slots = Arc::new(Semaphore::new(1));
        let comparer = Comparer::spawn(1);
        assert!(comparer.submit(job(&rt, &slots, r#"{"id":"42","name":"a"}"#)));
        let c = next(&mut rx).await;
        assert_eq!(c.endpoint, "GET /users/{id}");
        assert_eq!(c.differences.len(), 1, "{:?}", c.differences);
        assert_eq!(c.differences[0].path, "/id");
        assert_eq!(c.request.uri, "/users/42?x=1");
        let auth = c.request.headers.iter().find(|(k, _)| k == "authorization");
        assert_eq!(auth.map(|(_, v)| v.as_str()), Some("[redacted]"));
        assert_eq!(
            slots.available_permits(),
            1,
            "the shadow slot is free again"
        );
    }

    #[tokio::test]
    async fn a_panicking_comparison_does_not_stop_the_thread() {
        fn work(job: CompareJob) {
            if job.path_and_query == "/boom" {
                panic!("a bug in one comparison");
            }
            compare(job)
        }
        let (rt, mut rx) = runtime();
        let slots = Arc::new(Semaphore::new(2));
        let (comparer, _queue) = Comparer::with_queue(1, 8, work);
        let mut boom = job(&rt, &slots, "{}");
        boom.path_and_query = "/boom".into();
        assert!(comparer.submit(boom));
        assert!(comparer.submit(job(&rt, &slots, r#"{"id":42,"name":"a"}"#)));
        let c = next(&mut rx).await;
        assert_eq!(
            c.request.uri, "/users/42?x=1",
            "the job after the panic is compared"
        );
        assert_eq!(slots.available_permits(), 2, "both slots are free again");
    }

    #[tokio::test]
    async fn a_shadow_job_meeting_a_full_queue_is_counted_as_compare_backlog() {
        let (rt, _rx) = runtime();
        let (comparer, _queue) = Comparer::with_queue(0, 1, compare);
        let slots = Arc::new(Semaphore::new(2));
        assert!(comparer.submit(job(&rt, &slots, "{}")), "fills the queue");
        rt.mirror.use_comparer(comparer);

        let snap = rt.runtime.snapshot();
        let route = snap.route("api").expect("route").clone();
        let (head_tx, primary_head) = tokio::sync::oneshot::channel();
        let (body_tx, primary_body) = tokio::sync::oneshot::channel();
        let (captured_tx, captured_rx) = tokio::sync::oneshot::channel();
        head_tx.send((200, HeaderMap::new())).unwrap();
        body_tx.send(captured_rx).unwrap();
        captured_tx
            .send(crate::wire::body::Captured {
                body: b"{}".to_vec(),
                complete: true,
                ..Default::default()
            })
            .unwrap();
        let shadow_job = crate::mirror::ShadowJob {
            candidates: vec![crate::mirror::Candidate {
                index: 0,
                service: snap.service("v2").expect("service").clone(),
                permit: slots.clone().try_acquire_owned().expect("a free slot"),
            }],
            secondary: None,
            method: Method::GET,
            path_and_query: "/users/1".into(),
            host: "example.test".into(),
            headers: HeaderMap::new(),
            request_id: HeaderValue::from_static("req-2"),
            started: std::time::Instant::now(),
            request_body: None,
            primary_head,
            primary_body,
            route: route.clone(),
        };
        // The shadow server (port 9) refuses: that is a comparison of a shadow error, which
        // still has to go through the full queue.
        crate::mirror::run(shadow_job, rt.clone()).await;
        assert_eq!(route.stats.shadow_dropped.load(Ordering::Relaxed), 1);
        assert!(
            rt.runtime
                .metrics
                .encode()
                .contains(r#"umbra_shadow_dropped_total{route="api",reason="compare_backlog"} 1"#),
            "{}",
            rt.runtime.metrics.encode()
        );
        assert_eq!(
            slots.available_permits(),
            1,
            "the dropped job's slot is free; the queued one's is held"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_job_and_frees_its_slot() {
        let (rt, _rx) = runtime();
        let slots = Arc::new(Semaphore::new(2));
        let (comparer, _queue) = Comparer::with_queue(0, 1, compare);
        assert!(comparer.submit(job(&rt, &slots, "{}")));
        assert!(!comparer.submit(job(&rt, &slots, "{}")));
        assert_eq!(
            slots.available_permits(),
            1,
            "the refused job's slot is released, the queued one's is held"
        );
    }
}
