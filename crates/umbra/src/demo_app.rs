//! The built-in demo API used by `umbra demo` and the compose example. `v1` is the released
//! build; `v2` carries real regressions (a field's type changes on `/users/{id}`, a field
//! disappears on `/orders/{id}`, a rare 500) and both versions emit noisy fields (timestamps,
//! request ids, tag order) that umbra must not report as regressions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::seq::SliceRandom;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Orders answered by this process's v2, for its rare 500.
static ORDERS_SERVED: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn answer(v2: bool, req: &Request<Incoming>) -> (StatusCode, serde_json::Value) {
    let path = req.uri().path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut tags = vec!["new", "vip", "beta"];
    tags.shuffle(&mut rand::thread_rng());
    match segs.as_slice() {
        // `/health/ready` too, so `umbra healthcheck --admin http://127.0.0.1:PORT` works
        // as the container's HEALTHCHECK.
        ["health"] | ["health", "ready"] => (StatusCode::OK, json!({"status": "ok"})),
        ["users", id] => match id.parse::<u64>() {
            Ok(id) => {
                let balance = (id * 37 % 1000) as f64 / 4.0;
                (
                    StatusCode::OK,
                    json!({
                        "id": id,
                        "name": format!("user{id}"),
                        "email": format!("user{id}@example.com"),
                        // v2 regression: the balance became a string.
                        "balance": if v2 { json!(format!("{balance:.2}")) } else { json!(balance) },
                        "tags": tags,
                        "meta": {"generated_at": now_ms(), "request_id": format!("{:016x}", rand::random::<u64>())},
                    }),
                )
            }
            Err(_) => (StatusCode::BAD_REQUEST, json!({"error": "bad id"})),
        },
        ["orders", id] => {
            // v2 regression: a rare 500, on every 25th order (4 %), counted rather than drawn
            // so that a short demo run always shows it.
            if v2 && ORDERS_SERVED.fetch_add(1, Ordering::Relaxed) % 25 == 12 {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal"}),
                );
            }
            let id: u64 = id.parse().unwrap_or(0);
            let mut order = json!({
                "id": id,
                "items": [{"sku": "A-1", "qty": 1 + id % 3}, {"sku": "B-2", "qty": 2}],
                "total": 19.99 + id as f64,
                "currency": "EUR",
                "served_at": now_ms(),
            });
            if v2 {
                // v2 regression: the currency field disappeared.
                if let Some(o) = order.as_object_mut() {
                    o.remove("currency");
                }
            }
            (StatusCode::OK, order)
        }
        ["products"] => (
            StatusCode::OK,
            json!({"products": [{"id": 1, "name": "lamp"}, {"id": 2, "name": "desk"}], "cursor": format!("{:x}", rand::random::<u32>())}),
        ),
        _ => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// Serves the demo API on `listener` until `shutdown`, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    version: String,
    shutdown: CancellationToken,
) {
    serve_draining(listener, version, shutdown, CancellationToken::new()).await
}

/// Like [`serve`], but once `draining` fires every response carries `Connection: close`, so
/// keep-alive clients move away before the listener closes on `shutdown`.
async fn serve_draining(
    listener: tokio::net::TcpListener,
    version: String,
    shutdown: CancellationToken,
    draining: CancellationToken,
) {
    let v2 = version == "v2";
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let version = version.clone();
        let draining = draining.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let version = version.clone();
            let closing = draining.is_cancelled();
            async move {
                let (status, body) = answer(v2, &req);
                let mut resp = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("x-app-version", version);
                if closing {
                    resp = resp.header("connection", "close");
                }
                let resp = resp
                    .body(Full::new(Bytes::from(body.to_string())))
                    .expect("valid response");
                Ok::<_, Infallible>(resp)
            }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}

/// How long `demo-app` keeps serving after SIGTERM.
const DRAIN_MS: u64 = 1000;

/// `umbra demo-app`: serve one version until SIGTERM/Ctrl-C.
pub fn serve_blocking(version: &str, listen: &str) -> anyhow::Result<()> {
    if version != "v1" && version != "v2" {
        anyhow::bail!("--version must be `v1` or `v2`, not `{version}`");
    }
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow::anyhow!("--listen `{listen}` is not IP:PORT"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("umbra demo-app {version} listening on {}", l.local_addr()?);
        let (sd, draining) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(serve_draining(
            l,
            version.to_string(),
            sd.clone(),
            draining.clone(),
        ));
        crate::run::wait_for_signal().await;
        // Keep answering briefly (with `Connection: close`) so a proxy that is taking this
        // instance out of rotation finishes what it already sent here; then stop.
        eprintln!("umbra demo-app {version}: stopping (draining for {DRAIN_MS} ms)");
        draining.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(DRAIN_MS)).await;
        sd.cancel();
        let _ = task.await;
        Ok(())
    })
}
