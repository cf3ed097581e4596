//! Client connections as a whole: each connection's [`Activity`] (requests in flight, when a
//! byte last moved), which closes a connection on hyper's server once it has been idle for
//! `proxy.idle_timeout` (HTTP/2 has no header timeout to do it), and the process-wide table
//! that keeps within `proxy.max_connections` by shedding the oldest idle connection first.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use umbra_core::telemetry::{Metrics, ReasonOnly};

/// What a connection is doing: requests in flight and when a byte last moved.
pub(super) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request start, end or byte moved.
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// How long the connection has been idle; `None` while a request is in flight.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(now.saturating_sub(last)))
    }

    /// Returns once the connection has been idle for `after`.
    pub async fn idled(&self, after: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= after => return,
                Some(idle) => after - idle,
                None => after,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One open connection in the table.
struct Entry {
    id: u64,
    activity: Arc<Activity>,
    close: CancellationToken,
}

/// The open connections of the process, oldest first, when `proxy.max_connections` is set.
pub(super) struct Conns {
    table: Mutex<Vec<Entry>>,
    next: AtomicU64,
    metrics: Arc<Metrics>,
}

/// A connection's place in the table; leaving it (drop) frees the place.
pub(super) struct Ticket {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.conns.lock();
        table.retain(|e| e.id != self.id);
    }
}

impl Conns {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Conns> {
        Arc::new(Conns {
            table: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a new connection within `max`: when the table is full, the oldest idle
    /// connection is told to close (`close` cancelled) and leaves it; when none is idle, the
    /// new connection is refused (`None`).
    pub fn admit(
        self: &Arc<Self>,
        max: usize,
        activity: Arc<Activity>,
        close: CancellationToken,
    ) -> Option<Ticket> {
        let mut table = self.lock();
        if table.len() >= max {
            let Some(oldest_idle) = table.iter().position(|e| e.activity.idle_for().is_some())
            else {
                self.shed("refused");
                return None;
            };
            table.remove(oldest_idle).close.cancel();
            self.shed("idle");
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        table.push(Entry {
            id,
            activity,
            close,
        });
        Some(Ticket {
            conns: self.clone(),
            id,
        })
    }

    fn shed(&self, reason: &'static str) {
        self.metrics
            .connections_shed
            .get_or_create(&ReasonOnly { reason })
            .inc();
    }
}

/// An IO that marks its connection active whenever bytes move.
pub(super) struct Watched<T> {
    pub inner: T,
    pub activity: Arc<Activity>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let res = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room_and_a_busy_table_refuses() {
        let conns = Conns::new(Arc::new(Metrics::new()));
        let (a, b) = (Activity::new(), Activity::new());
        let (close_a, close_b) = (CancellationToken::new(), CancellationToken::new());
        b.begin();
        let _ta = conns.admit(2, a.clone(), close_a.clone()).expect("room");
        let _tb = conns.admit(2, b.clone(), close_b.clone()).expect("room");
        let c = Activity::new();
        c.begin();
        let _tc = conns
            .admit(2, c.clone(), CancellationToken::new())
            .expect("the idle one made room");
        assert!(close_a.is_cancelled(), "the idle connection is shed");
        assert!(!close_b.is_cancelled(), "the busy one is not");
        assert!(
            conns
                .admit(2, Activity::new(), CancellationToken::new())
                .is_none(),
            "both busy: the new one is refused"
        );
        drop(_tb);
        assert!(conns
            .admit(2, Activity::new(), CancellationToken::new())
            .is_some());
        let text = conns.metrics.encode();
        assert!(
            text.contains(r#"umbra_connections_shed_total{reason="idle"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"umbra_connections_shed_total{reason="refused"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn activity_is_idle_only_between_requests() {
        let a = Activity::new();
        assert!(a.idle_for().is_some());
        a.begin();
        assert!(a.idle_for().is_none());
        a.end();
        assert!(a.idle_for().is_some());
    }
}
