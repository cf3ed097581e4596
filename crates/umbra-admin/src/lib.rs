//! umbra's admin API: JSON over HTTP on the admin listener, plus a minimal HTML overview.
//!
//! Every answer is JSON (except `/metrics` and `/`); every error is
//! `{"error": "<code>", "message": "..."}`, and a 422 message names the offending field.
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /health/live` | liveness: `{"status": "healthy"}` |
//! | `GET /health`, `GET /health/ready` | `{"status": "healthy"\|"degraded"\|"unhealthy", "checks": {"config": {...}, "store": {...}, "store_feed": {...}\|null}}`; the store is pinged with a 1 s timeout; a store that is down, a change feed that is reconnecting, or a certificate `[tls]` needs that is missing or failing (`checks.tls`), makes umbra `degraded`. `/health/ready` answers 503 only when `unhealthy` |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//! | `GET /api/openapi.json` | the OpenAPI 3.0 document of this API (see [`openapi`]) |
//! | `GET /api/status` | version, uptime, config source, last reload error, reloads, store kind and state, `store_feed` (replicas on one PostgreSQL: `state` listening\|reconnecting, `replicas` listening on the database, notifications, applied, resyncs, reconnects, last error; null otherwise), generation, counts, `tls` (HTTPS listener, certificate files and ACME names with their state; `null` without `[tls]`) |
//! | `GET /api/routes`, `GET /api/routes/{name}` | routes with rule, service, shadow, canary, source, override state and live stats |
//! | `PUT /api/routes/{name}`, `DELETE /api/routes/{name}` | create/replace/delete an API route (422 invalid, 409 file/docker route) |
//! | `PUT`/`POST`/`DELETE /api/routes/{name}/shadow` | set the candidates (`{"service", "percent", ...}` or a list of them) / add one (`{"service", ...}`; the others stay) / stop shadowing (`?service=NAME`: that one candidate) |
//! | `PUT`/`DELETE /api/routes/{name}/canary` | `{"service", "weight", "sticky"?}`; weight 0 (or DELETE) removes the canary |
//! | `POST /api/routes/{name}/promote`, `POST /api/routes/{name}/rollback` | promote the candidate / return to the previous service (409 when there is nothing to do) |
//! | `POST`/`GET /api/routes/{name}/rollout` | start a rollout (the `rollout` keys as JSON; 422 naming the field, 409 while one runs) / its state: step, weight, window start, per-gate evidence, history |
//! | `POST /api/routes/{name}/rollout/{pause\|resume\|abort\|advance}` | steer the rollout in progress (409 when there is none) |
//! | `POST /api/routes/{name}/ignore` | `{"path": "/meta/x"}`: mark a field as noise for the route |
//! | `POST /api/routes/{name}/deploy` | `{"target", "wait"?, "drain"?, "health_path"?}`: health-check the target, switch the route's service to it, drain the old servers; 504 `target_unhealthy` and nothing changed when it never answers 2xx |
//! | `POST /api/routes/{name}/pause`, `.../maintenance`, `.../resume` | `{"max"?: "30s"}` holds new requests (503 after `max`); `{"message"?}` answers 503 with a page; resume opens the route |
//! | `GET /api/routes/{name}/findings` | `?noise=true`, `?candidate=NAME`: the route's findings (differences grouped by cause), by severity then rate |
//! | `GET /api/routes/{name}/diffs` | per endpoint: field difference and noise rates, significance, latency percentiles and regression |
//! | `GET /api/comparisons?route=&verdict=&endpoint=&finding=&limit=&before=` | `{"items": [...], "next": cursor\|null}`, newest first |
//! | `GET /api/comparisons/{id}` | one whole comparison |
//! | `GET /api/services` | services, their servers and health state |
//! | `PUT`/`DELETE /api/services/{name}` | create/replace (`{"servers", "health"?, "balance"?}`, 422 naming the field) / delete (404 unknown, 409 while a route uses it or for a file/docker service) a runtime service |
//! | `GET /api/events?limit=&before=` | the audit log, newest first, `{"items", "next"}` |
//! | `GET /`, `GET /ui/*` | the web UI (see [`ui`]) |
//!
//! Route changes answer `{"route": <route or null>, "persisted": bool}`: the change is in force
//! at once; `persisted` is false when the store failed (logged) or there is none, and then the
//! change will not survive a restart. The runtime emits the audit events itself.
//! `X-Umbra-Source: ui|cli` tags a change's source (default `api`).
//!
//! Safety, with or without a token (loopback is a browser's neighbour; see [`guard`]):
//! - every request but `/health*` whose `Host` is not the admin's own (an IP address,
//!   `localhost`, or a name in `[admin] hosts`) answers 421 `misdirected` (DNS rebinding);
//! - a `POST`/`PUT`/`PATCH`/`DELETE` whose `Origin` (or `Referer`) is another site answers 403
//!   `cross_origin`;
//! - a `POST`/`PUT`/`PATCH`/`DELETE` on `/api/*` without `Content-Type: application/json`
//!   (bodiless ones too) answers 415 `unsupported_media_type`.
//!
//! Auth: when the config in force has a token, `/api/*`, `/`, `/ui/*` pages and `/metrics` need
//! `Authorization: Bearer <token>` (compared in constant time), else 401. The token is read
//! from the config in force, so a reload that changes it rotates it (the old one stops working
//! at once). The `/health*` endpoints never need it (container health checks). The web UI signs
//! in at `/ui/login`, which starts a server-side session and sets an `umbra_session` cookie
//! holding its random id, never the token (HttpOnly, SameSite=Strict); the cookie is accepted
//! for `GET` pages, and for the API only with the header `X-Umbra-CSRF: 1` (see [`auth`]).
//! Sessions end after 12 h, on restart, and when the token changes ([`session`]). Wrong tokens
//! at `/ui/login` are throttled per client address: 429 with `Retry-After` ([`throttle`]).
//! Without a token the admin is open, which only a loopback listener allows: if a reload leaves
//! a non-loopback listener without a token, the protected endpoints answer 503 `token_missing`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use tokio_util::sync::CancellationToken;
use umbra_core::Runtime;
use umbra_store::ComparisonStore;

pub mod audit;
pub mod auth;
pub mod comparisons;
pub mod deploy;
pub mod error;
pub mod findings;
pub mod guard;
pub mod health;
pub mod hold;
pub mod openapi;
pub mod rollout;
pub mod routes;
pub mod services;
pub mod session;
pub mod throttle;
pub mod ui;

pub use error::ApiError;

/// What every handler needs. Build it with [`AdminState::new`]; [`serve`] tells it the address
/// it listens on.
#[derive(Clone)]
pub struct AdminState {
    pub runtime: Arc<Runtime>,
    /// None when umbra runs without a store: store-backed endpoints answer 503.
    pub store: Option<Arc<dyn ComparisonStore>>,
    pub version: &'static str,
    pub config_source: String,
    /// The data plane's queue to the store (its depth is shown and exported).
    pub sink: Arc<umbra_proxy::ComparisonSink>,
    /// Comparisons the store writer dropped (mirrored into `umbra_store_dropped_total`).
    pub store_dropped: Arc<AtomicU64>,
    /// The findings models the compare threads feed (empty until [`AdminState::with_findings`]).
    pub findings: Arc<umbra_proxy::FindingsModels>,
    /// The rollout controllers (None: the rollout endpoints answer 503).
    pub rollouts: Option<Arc<umbra_core::rollout::Rollouts>>,
    /// The UI's sessions and the sign-in throttle.
    safety: Arc<Safety>,
    /// The address the admin listens on (None until [`serve`], e.g. in router tests).
    local_addr: Option<SocketAddr>,
    /// The store's change feed (PostgreSQL replicas), shown in `/api/status`.
    pub feed: Option<umbra_store::FeedStatus>,
    /// The HTTPS edge's report, when `[tls]` is on.
    pub tls: Option<Arc<dyn TlsReport>>,
}

/// What the HTTPS edge reports (umbra-edge's status, handed in by the binary).
pub trait TlsReport: Send + Sync {
    /// The `tls` object of `/api/status`.
    fn json(&self) -> serde_json::Value;
    /// Why the edge is degraded (a certificate missing or failing), if it is.
    fn problem(&self) -> Option<String>;
}

#[derive(Default)]
struct Safety {
    sessions: session::Sessions,
    logins: throttle::LoginThrottle,
}

impl AdminState {
    pub fn new(
        runtime: Arc<Runtime>,
        store: Option<Arc<dyn ComparisonStore>>,
        version: &'static str,
        config_source: impl Into<String>,
        store_dropped: Arc<AtomicU64>,
    ) -> Self {
        AdminState {
            runtime,
            store,
            version,
            config_source: config_source.into(),
            store_dropped,
            rollouts: None,
            sink: Arc::new(umbra_proxy::ComparisonSink::disabled()),
            findings: Arc::default(),
            safety: Arc::default(),
            local_addr: None,
            tls: None,
            feed: None,
        }
    }

    /// The HTTPS edge, reported in `/api/status` and `/health/ready`.
    pub fn with_tls(mut self, tls: Arc<dyn TlsReport>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The change feed that brings other replicas' changes, for `/api/status`.
    pub fn with_feed(mut self, feed: Option<umbra_store::FeedStatus>) -> Self {
        self.feed = feed;
        self
    }

    /// The data plane's queue to the store, whose depth the admin shows and exports.
    pub fn with_sink(mut self, sink: Arc<umbra_proxy::ComparisonSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The findings models the compare threads feed (the proxy's `mirror.findings`).
    pub fn with_findings(mut self, findings: Arc<umbra_proxy::FindingsModels>) -> Self {
        self.findings = findings;
        self
    }

    /// The rollout controllers the rollout endpoints steer.
    pub fn with_rollouts(mut self, rollouts: Arc<umbra_core::rollout::Rollouts>) -> Self {
        self.rollouts = Some(rollouts);
        self
    }

    /// The admin token of the config in force (a reload rotates it); `None` leaves the admin
    /// open. Only a loopback listener may be open: when the config in force has no token but
    /// the admin listens elsewhere (a reload moved `admin.listen` and dropped the token; the
    /// listener does not move), the admin closes with 503 instead.
    pub fn token(&self) -> Result<Option<String>, ApiError> {
        let snap = self.runtime.load();
        let admin = &snap.config.admin;
        let listen = self.local_addr.unwrap_or(admin.listen);
        match &admin.token {
            Some(t) => Ok(Some(t.clone())),
            None if umbra_core::config::is_loopback(&listen) => Ok(None),
            None => Err(ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "token_missing",
                format!(
                    "the admin listens on {listen}, which is not loopback, but the config in force \
                     has no admin.token; set one and reload"
                ),
            )),
        }
    }

    pub fn sessions(&self) -> &session::Sessions {
        &self.safety.sessions
    }

    pub fn logins(&self) -> &throttle::LoginThrottle {
        &self.safety.logins
    }
}

/// The admin API.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/", get(ui::overview))
        .route("/ui/routes/{name}", get(ui::route::page_handler))
        .route("/ui/comparisons", get(ui::comparisons::list))
        .route("/ui/comparisons/{id}", get(ui::comparisons::detail))
        .route("/ui/events", get(ui::comparisons::events))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/status", get(routes::status))
        .route("/api/routes", get(routes::list))
        .route(
            "/api/routes/{name}",
            get(routes::get).put(routes::put).delete(routes::delete),
        )
        .route(
            "/api/routes/{name}/shadow",
            put(routes::put_shadow)
                .post(routes::post_shadow)
                .delete(routes::delete_shadow),
        )
        .route(
            "/api/routes/{name}/canary",
            put(routes::put_canary).delete(routes::delete_canary),
        )
        .route("/api/routes/{name}/promote", post(routes::promote))
        .route("/api/routes/{name}/rollback", post(routes::rollback))
        .route(
            "/api/routes/{name}/rollout",
            get(rollout::get).post(rollout::start),
        )
        .route("/api/routes/{name}/rollout/{action}", post(rollout::act))
        .route("/api/routes/{name}/ignore", post(routes::ignore))
        .route("/api/routes/{name}/deploy", post(deploy::post))
        .route("/api/routes/{name}/pause", post(hold::pause))
        .route("/api/routes/{name}/maintenance", post(hold::maintenance))
        .route("/api/routes/{name}/resume", post(hold::resume))
        .route("/api/routes/{name}/diffs", get(routes::diffs))
        .route("/api/routes/{name}/findings", get(findings::list))
        .route("/api/comparisons", get(comparisons::list))
        .route("/api/comparisons/{id}", get(comparisons::get))
        .route("/api/services", get(routes::services))
        .route(
            "/api/services/{name}",
            put(services::put).delete(services::delete),
        )
        .route("/api/discovery", get(routes::discovery))
        .route("/api/events", get(comparisons::events))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/ui/app.css", get(ui::app_css))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/login", get(ui::login_page).post(ui::login))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("no admin endpoint at `{}`", uri.path()))
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

/// Serves the admin API until `shutdown` is cancelled, then finishes requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "admin API listening");
    let state = AdminState {
        local_addr: addr,
        ..state
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
