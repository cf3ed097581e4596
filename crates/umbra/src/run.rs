//! `umbra run` and `umbra check`: wiring the data plane, the store writer, health checks, the
//! admin API, reloads and signals together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use umbra_core::config::Config;
use umbra_core::runtime::RuntimeEvent;
use umbra_core::telemetry::Metrics;
use umbra_core::Runtime;
use umbra_proxy::{ComparisonSink, Proxy};
use umbra_store::{ComparisonStore, StoreWriter, WriterConfig};

pub fn check(path: &Path) -> ExitCode {
    let checked = Config::load(path).and_then(|c| match &c.tls {
        Some(tls) => umbra_edge::check(tls)
            .map(|()| c)
            .map_err(|errors| umbra_core::config::file_errors(path, errors)),
        None => Ok(c),
    });
    match checked {
        Ok(c) => {
            println!(
                "{}: ok ({} services, {} routes)",
                path.display(),
                c.services.len(),
                c.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A running umbra: addresses and the handle to stop it.
pub struct Running {
    pub proxy_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    /// For embedders that change routes at run time (nothing in the binary reads it now).
    #[allow(dead_code)]
    pub runtime: Arc<Runtime>,
    pub store: Option<Arc<dyn ComparisonStore>>,
    /// The findings the compare threads keep (what `/api/routes/{name}/findings` serves).
    pub findings: Arc<umbra_proxy::FindingsModels>,
    pub rollouts: Arc<umbra_core::rollout::Rollouts>,
    pub shutdown: CancellationToken,
    proxy_threads: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
    writer: Option<umbra_store::WriterHandle>,
    /// The HTTPS listener, when `[tls]` is on.
    pub edge: Option<umbra_edge::Edge>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, flushes the store.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let threads: Vec<_> =
            std::mem::take(&mut *self.proxy_threads.lock().expect("threads lock"));
        for t in threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(edge) = self.edge.take() {
            let _ = tokio::task::spawn_blocking(move || edge.join()).await;
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), w.join()).await;
        }
    }
}

/// Starts everything for a validated config. `path` (if any) is watched for reloads.
pub async fn start(config: Config, path: Option<PathBuf>) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let store = match umbra_store::open(&config.store.url).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "store unavailable; serving without storing comparisons");
            None
        }
    };
    let (sink, rx) = if store.is_some() {
        let (s, rx) = ComparisonSink::new(config.store.queue);
        (s, Some(rx))
    } else {
        (ComparisonSink::disabled(), None)
    };
    let (events_tx, events_rx) = mpsc::channel::<RuntimeEvent>(1024);
    let metrics = Arc::new(Metrics::new());
    let proxy_listen = config.proxy.listen;
    let path_for_errors = path.clone();
    let workers = config.proxy.workers;
    let admin_listen = config.admin.listen;
    let keep = config.store.keep;
    let keep_same = config.store.keep_same;
    let source = config.source.clone();
    let config_docker = config.docker.clone();
    let sink = Arc::new(sink);
    let runtime = Runtime::new(config, metrics, events_tx);
    let proxy = Proxy::new(runtime.clone(), sink.clone());

    let mut writer = None;
    let store_dropped = Arc::new(AtomicU64::new(0));
    if let (Some(store), Some(rx)) = (&store, rx) {
        match store.list_routes().await {
            Ok(routes) => {
                let docs = routes
                    .into_iter()
                    .map(|r| (r.name, r.kind, r.doc))
                    .collect();
                runtime.restore(docs);
            }
            Err(e) => tracing::error!(error = %e, "could not load runtime routes from the store"),
        }
        let w = StoreWriter::spawn(
            store.clone(),
            rx,
            WriterConfig {
                keep_same,
                ..Default::default()
            },
            shutdown.clone(),
        );
        writer = Some(w);
        umbra_store::spawn_retention(
            store.clone(),
            keep,
            Duration::from_secs(600),
            shutdown.clone(),
        );
    }
    if let Some(w) = &writer {
        // `umbra_store_dropped_total` counts both the queue overflowing (sink) and batches the
        // writer could not store.
        let counter = w.dropped_counter();
        let mirror = store_dropped.clone();
        let sd = shutdown.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            loop {
                let total = counter.load(std::sync::atomic::Ordering::Relaxed) + sink.dropped();
                mirror.store(total, std::sync::atomic::Ordering::Relaxed);
                tokio::select! { _ = sd.cancelled() => return, _ = tokio::time::sleep(Duration::from_millis(500)) => {} }
            }
        });
    }

    // Replicas on one PostgreSQL: hear the changes the others store.
    let feed = store
        .as_ref()
        .and_then(|s| crate::replicas::start_feed(s, &runtime, shutdown.clone()));

    // Audit log: runtime events go to the store.
    umbra_admin::audit::spawn_audit_log(store.clone(), events_rx);

    tokio::spawn(umbra_core::health::run(runtime.clone(), shutdown.clone()));
    if let Some(docker) = config_docker.filter(|d| d.enabled) {
        tokio::spawn(umbra_docker::run(runtime.clone(), docker, shutdown.clone()));
    }
    if let Some(path) = path {
        spawn_reloader(runtime.clone(), path, shutdown.clone());
    }

    let listeners = umbra_proxy::bind(proxy_listen, workers)
        .with_context(|| format!("cannot listen on {proxy_listen} (proxy.listen)"))?;
    let proxy_addr = listeners[0].local_addr()?;
    let edge = start_edge(&proxy, path_for_errors.as_deref(), &shutdown)?;
    let admin_listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (admin.listen)"))?;
    let admin_addr = admin_listener.local_addr()?;
    // Rollout controllers: resumed where the store left them, or started from the config.
    let rollouts = umbra_core::rollout::Rollouts::new(
        runtime.clone(),
        Arc::new(umbra_admin::rollout::StoreBackend {
            store: store.clone(),
        }),
        crate::replicas::leadership(&store),
        shutdown.clone(),
    );
    rollouts.restore().await;
    rollouts.start_requested().await;
    rollouts.watch_requests();
    let state = umbra_admin::AdminState::new(
        runtime.clone(),
        store.clone(),
        env!("CARGO_PKG_VERSION"),
        source,
        store_dropped,
    )
    .with_sink(sink)
    .with_feed(feed)
    .with_findings(proxy.mirror.findings.clone())
    .with_rollouts(rollouts.clone());
    let findings = proxy.mirror.findings.clone();
    if let Some(store) = &store {
        umbra_admin::findings::spawn_rebuild(
            store.clone(),
            runtime.clone(),
            proxy.mirror.findings.clone(),
        );
    }
    let state = match &edge {
        Some(e) => state.with_tls(Arc::new(EdgeReport(e.status()))),
        None => state,
    };
    tokio::spawn(umbra_admin::serve(admin_listener, state, shutdown.clone()));
    let proxy_threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let first = spawn_proxy(listeners, proxy.clone(), shutdown.child_token())?;
    proxy_threads.lock().expect("threads lock").push(first.0);
    tokio::spawn(follow_listen(
        proxy,
        proxy_listen,
        first.1,
        shutdown.clone(),
        proxy_threads.clone(),
    ));
    tracing::info!(proxy = %proxy_addr, admin = %admin_addr, "umbra is running");
    Ok(Running {
        proxy_addr,
        admin_addr,
        runtime,
        store,
        findings,
        rollouts,
        shutdown,
        proxy_threads,
        writer,
        edge,
    })
}

/// Starts the HTTPS listener when `[tls]` is on; certificate problems stop the start, named
/// with the config file's positions.
fn start_edge(
    proxy: &Arc<Proxy>,
    path: Option<&Path>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<umbra_edge::Edge>> {
    let Some(tls) = proxy.runtime.load().config.tls.clone() else {
        return Ok(None);
    };
    match umbra_edge::Edge::start(&tls, proxy.clone(), shutdown.child_token()) {
        Ok(edge) => Ok(Some(edge)),
        Err(umbra_edge::StartError::Certs(errors)) => match path {
            Some(p) => anyhow::bail!("{}", umbra_core::config::file_errors(p, errors)),
            None => anyhow::bail!("{}", umbra_edge::StartError::Certs(errors)),
        },
        Err(e) => Err(e.into()),
    }
}

/// umbra-edge's status as the admin API reads it.
struct EdgeReport(Arc<umbra_edge::status::Status>);

impl umbra_admin::TlsReport for EdgeReport {
    fn json(&self) -> serde_json::Value {
        self.0.json()
    }

    fn problem(&self) -> Option<String> {
        self.0.problem()
    }
}

type ProxyThread = (std::thread::JoinHandle<()>, CancellationToken);

fn spawn_proxy(
    listeners: Vec<std::net::TcpListener>,
    rt: Arc<Proxy>,
    token: CancellationToken,
) -> std::io::Result<ProxyThread> {
    let t = token.clone();
    let handle = std::thread::Builder::new()
        .name("umbra-proxy".into())
        .spawn(move || umbra_proxy::serve(listeners, rt, t))?;
    Ok((handle, token))
}

/// Rebinds the proxy when a reload changes `proxy.listen`: the new listeners start first, then
/// the old ones stop accepting and drain. Other reloads never touch the listeners.
async fn follow_listen(
    rt: Arc<Proxy>,
    mut current: std::net::SocketAddr,
    mut token: CancellationToken,
    shutdown: CancellationToken,
    threads: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let (want, workers) = {
            let snap = rt.runtime.load();
            (snap.config.proxy.listen, snap.config.proxy.workers)
        };
        if want == current {
            continue;
        }
        match umbra_proxy::bind(want, workers) {
            Ok(listeners) => match spawn_proxy(listeners, rt.clone(), shutdown.child_token()) {
                Ok((handle, new_token)) => {
                    threads.lock().expect("threads lock").push(handle);
                    token.cancel();
                    token = new_token;
                    tracing::info!(from = %current, to = %want, "proxy listener moved");
                    current = want;
                }
                Err(e) => tracing::error!(error = %e, "cannot start proxy workers"),
            },
            Err(e) => {
                tracing::error!(error = %e, listen = %want, "cannot listen on the new proxy.listen; keeping the old listener");
                current = want; // don't retry in a loop; the next change tries again
            }
        }
    }
}

/// Reloads on SIGHUP and when the file changes (debounced).
fn spawn_reloader(rt: Arc<Runtime>, path: PathBuf, shutdown: CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                let _ = tx.try_send(());
            }
        });
    }
    // Watch the directory: editors replace files, which a watch on the file itself misses.
    let watch_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = path.file_name().map(|f| f.to_os_string());
    let watcher = {
        use notify::Watcher;
        let tx = tx.clone();
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if ev.kind.is_access() {
                    return;
                }
                if ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|f| f.to_os_string()) == file_name)
                {
                    let _ = tx.try_send(());
                }
            }
        });
        if let Ok(w) = &mut w {
            if let Err(e) = w.watch(&watch_dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
            }
        }
        w.ok()
    };
    tokio::spawn(async move {
        let _keep = watcher;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = rx.recv() => if got.is_none() { return },
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
            let _ = rt.reload(Config::load(&path));
        }
    });
}

pub fn run(path: &Path) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => anyhow::bail!("{e}"),
    };
    crate::logging::init(&config.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("umbra-control")
        .build()?;
    rt.block_on(async {
        let running = start(config, Some(path.to_path_buf())).await?;
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.stop().await;
        tracing::info!("bye");
        Ok(())
    })
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
