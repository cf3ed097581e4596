//! The HTTPS listener: rustls' server config (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`,
//! certificates from the SNI resolver) and one worker thread per listener, as the plain side
//! has, each accepting, shaking hands and handing the stream to the proxy's hyper lane.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use umbra_proxy::Proxy;

use crate::certs::{provider, Resolver};

/// rustls' server side: TLS 1.3 and 1.2 only, HTTP/2 preferred over HTTP/1.1, session
/// tickets for resumption.
pub fn server_config(resolver: Arc<Resolver>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(config)
}

/// Serves HTTPS on `listeners` (one worker thread each) until `shutdown`, then lets open
/// connections finish within the proxy's grace period. Returns the worker threads.
pub fn serve(
    listeners: Vec<TcpListener>,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.into_iter().enumerate() {
        let (acceptor, proxy, shutdown) = (acceptor.clone(), proxy.clone(), shutdown.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("umbra-tls-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("TLS worker runtime");
                    runtime.block_on(worker(l, acceptor, proxy, shutdown));
                })?,
        );
    }
    Ok(threads)
}

async fn worker(
    l: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
) {
    let listener = match tokio::net::TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "TLS worker cannot use its listener");
            return;
        }
    };
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, proxy, shutdown) = (acceptor.clone(), proxy.clone(), shutdown.clone());
        connections.spawn(async move {
            // The handshake has the time a request head has.
            let limit = proxy.runtime.load().config.proxy.header_timeout;
            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => umbra_proxy::serve_secure(tls, peer, proxy, shutdown).await,
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    connections.close();
    let grace = proxy.runtime.load().config.proxy.grace;
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing TLS connections still open");
    }
}
