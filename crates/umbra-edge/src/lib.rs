//! umbra at the edge: HTTPS in front of the proxy, so umbra alone can stand on ports 80 and 443.
//!
//! - `certs`: PEM files into rustls keys, and the SNI resolver over the certificate sets.
//! - `files`: the `[tls] certs` files, reloaded when they change.
//! - `listener`: rustls' server config and the HTTPS worker threads, which hand each TLS
//!   stream to the proxy's hyper lane (HTTP/2 or HTTP/1.1 by ALPN).
//! - `plain`: the plain listener's own answers: ACME challenges and the redirect to HTTPS.
//! - `acme`: automatic certificates (account, orders, HTTP-01, storage, renewal).
//! - `status`: what `/api/status` and `/health/ready` show.

pub mod acme;
pub mod certs;
pub mod files;
pub mod listener;
pub mod plain;
pub mod status;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use umbra_core::config::{ConfigError, TlsConfig};
use umbra_core::Runtime;
use umbra_proxy::Proxy;

use crate::certs::Resolver;
use crate::files::Files;
use crate::plain::Plain;
use crate::status::Status;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificate files that cannot be used, each naming its key and file.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Certs(Vec<ConfigError>),
    #[error("cannot listen on {addr} (tls.listen): {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot start the TLS workers: {0}")]
    Threads(std::io::Error),
}

/// Checks the certificate files of `tls` (readable, PEM, key matching its certificate), as
/// `umbra check` and a start do.
pub fn check(tls: &TlsConfig) -> Result<(), Vec<ConfigError>> {
    Files::load(&tls.certs).map(|_| ())
}

/// The running edge: the HTTPS listener's address and what it reports.
pub struct Edge {
    pub addr: SocketAddr,
    status: Arc<Status>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Edge {
    /// Starts HTTPS on `tls.listen` for `proxy` (call inside a tokio runtime: the file watcher
    /// and the ACME manager run on it), and hooks the plain listener for challenges and
    /// redirects. Runs until `shutdown`.
    pub fn start(
        tls: &TlsConfig,
        proxy: Arc<Proxy>,
        shutdown: CancellationToken,
    ) -> Result<Edge, StartError> {
        let files = Files::load(&tls.certs).map_err(StartError::Certs)?;
        let status = Arc::new(Status::default());
        let resolver = Arc::new(Resolver::default());
        resolver.files.store(Arc::new(files.table()));
        files.report(&[], &status);
        let workers = proxy.runtime.load().config.proxy.workers;
        let listeners =
            umbra_proxy::bind(tls.listen, workers).map_err(|source| StartError::Listen {
                addr: tls.listen,
                source,
            })?;
        let addr = listeners[0]
            .local_addr()
            .map_err(|source| StartError::Listen {
                addr: tls.listen,
                source,
            })?;
        status.set_listen(addr.to_string());
        let config = listener::server_config(resolver.clone())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let plain = Arc::new(Plain::default());
        plain.https_port.store(addr.port(), Ordering::Relaxed);
        plain.redirect.store(tls.redirect_http, Ordering::Relaxed);
        let _ = proxy.plain_hook.set(plain.clone());
        let covered = Arc::new(Mutex::new(files.names()));
        let runtime = proxy.runtime.clone();
        tokio::spawn(follow_redirect(
            runtime.clone(),
            plain.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(files::watch(
            files,
            runtime.clone(),
            resolver.clone(),
            status.clone(),
            covered.clone(),
            shutdown.clone(),
        ));
        if let Some(acme) = &tls.acme {
            status.acme_start(&acme.directory);
            let manager = acme::Manager {
                config: acme.clone(),
                storage: tls.storage.clone(),
                runtime,
                resolver,
                challenges: plain.challenges.clone(),
                status: status.clone(),
                covered,
            };
            tokio::spawn(manager.run(shutdown.clone()));
        }
        let threads =
            listener::serve(listeners, acceptor, proxy, shutdown).map_err(StartError::Threads)?;
        tracing::info!(https = %addr, "TLS listener is running");
        Ok(Edge {
            addr,
            status,
            threads,
        })
    }

    /// The `tls` object of `/api/status`.
    pub fn status_json(&self) -> serde_json::Value {
        self.status.json()
    }

    /// Why the edge is degraded (a certificate missing or failing), if it is.
    pub fn problem(&self) -> Option<String> {
        self.status.problem()
    }

    /// The shared status (for the admin API).
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Waits for the HTTPS workers to finish (after `shutdown`). Blocking.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Keeps the redirect switch in step with the config in force (a reload may turn it).
async fn follow_redirect(runtime: Arc<Runtime>, plain: Arc<Plain>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(files::POLL) => {}
        }
        let on = runtime
            .load()
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.redirect_http);
        plain.redirect.store(on, Ordering::Relaxed);
    }
}
