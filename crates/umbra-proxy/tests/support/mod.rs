//! umbra's data plane in-process for the integration tests: a runtime from a config, the
//! proxy on an ephemeral port with its own worker threads, stopped (and joined) on drop.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod raw;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_diff::Comparison;
use umbra_proxy::{ComparisonSink, Proxy};

/// One umbra serving on `addr`; its comparisons arrive on `comparisons`.
pub struct Umbra {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub rt: Arc<Runtime>,
    pub comparisons: mpsc::Receiver<Comparison>,
    pub shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Umbra {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts umbra for `config` with `workers` worker threads.
pub fn start_workers(config: Config, workers: usize) -> Umbra {
    let (sink, rx) = ComparisonSink::new(1000);
    let (etx, _erx) = mpsc::channel(100);
    let rt = Runtime::new(config, Arc::new(Metrics::new()), etx);
    let proxy = Proxy::new(rt.clone(), Arc::new(sink));
    let listeners = umbra_proxy::bind("127.0.0.1:0".parse().expect("an address"), workers)
        .expect("bind umbra on 127.0.0.1:0");
    let addr = listeners[0].local_addr().expect("local_addr");
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    let thread = std::thread::spawn(move || umbra_proxy::serve(listeners, proxy, s));
    Umbra {
        url: format!("http://{addr}"),
        addr,
        rt,
        comparisons: rx,
        shutdown,
        thread: Some(thread),
    }
}

/// Starts umbra for `config` with one worker.
pub fn start(config: Config) -> Umbra {
    start_workers(config, 1)
}
