//! The store's background services: the batching writer and the retention sweeper.
//! Control-plane side, fed by the data plane through a bounded channel.
//!
//! The data plane `try_send`s each comparison into a bounded `mpsc` channel and counts what does
//! not fit; it never waits. [`StoreWriter`] drains that channel in batches of up to `batch_max`
//! (or whatever arrived within `flush_every` of a batch's first item), keeps only a `keep_same`
//! share of `same` comparisons in full (the rest are counted, not kept in full), and writes each
//! batch in one transaction. A failed batch is counted as dropped and logged (rate-limited);
//! the writer then backs off (100 ms doubling to 5 s) and carries on with newer comparisons, so
//! a dead database costs memory bounded by the channel and nothing else. On shutdown it closes
//! the channel, drains what is left and flushes it before returning (if a flush fails then, the
//! rest is counted as dropped rather than tried batch by batch against a dead database).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use umbra_diff::{Comparison, Verdict};

use crate::encode::now_ms;
use crate::{ComparisonStore, StoreError};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At most one "store write failed" warning per this interval; the rest are summed into it.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How often a filling batch looks at the channel.
const FILL_POLL: Duration = Duration::from_millis(5);

/// How the writer batches and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// Most comparisons per write transaction.
    pub batch_max: usize,
    /// Longest a comparison waits for its batch to fill.
    pub flush_every: Duration,
    /// Share (0.0–1.0) of `same` comparisons stored in full; the rest only get a counted row.
    /// Every other verdict is always stored in full.
    pub keep_same: f64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_max: 512,
            flush_every: Duration::from_millis(100),
            keep_same: 0.05,
        }
    }
}

#[derive(Default)]
struct WriterStats {
    written: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    failing: AtomicBool,
    last_error: Mutex<Option<Arc<StoreError>>>,
}

/// The running writer's counters and its task.
pub struct WriterHandle {
    stats: Arc<WriterStats>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Comparisons written so far (full and counted-only).
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    /// Comparisons lost because their batch failed to write.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// The live drop counter, for a metric (`umbra_store_dropped_total`) to read.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.stats.dropped.clone()
    }

    /// The live written counter.
    pub fn written_counter(&self) -> Arc<AtomicU64> {
        self.stats.written.clone()
    }

    /// The most recent write error, kept after recovery (see [`WriterHandle::is_failing`]).
    pub fn last_error(&self) -> Option<Arc<StoreError>> {
        self.stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True while the latest batch failed (readiness: the store is not accepting writes).
    pub fn is_failing(&self) -> bool {
        self.stats.failing.load(Ordering::Relaxed)
    }

    /// Waits for the writer to finish after shutdown was requested (or every sender is gone),
    /// which includes draining and flushing the channel.
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "store writer task failed");
        }
    }
}

/// The batching store writer.
pub struct StoreWriter;

impl StoreWriter {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(
        store: Arc<dyn ComparisonStore>,
        rx: mpsc::Receiver<Comparison>,
        cfg: WriterConfig,
        shutdown: CancellationToken,
    ) -> WriterHandle {
        let stats = Arc::new(WriterStats::default());
        let task = tokio::spawn(
            Writer {
                store,
                cfg: WriterConfig {
                    batch_max: cfg.batch_max.max(1),
                    ..cfg
                },
                stats: stats.clone(),
                rng: StdRng::from_entropy(),
                log: LogLimiter::default(),
            }
            .run(rx, shutdown),
        );
        WriterHandle { stats, task }
    }
}

struct Writer {
    store: Arc<dyn ComparisonStore>,
    cfg: WriterConfig,
    stats: Arc<WriterStats>,
    rng: StdRng,
    log: LogLimiter,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Comparison>, shutdown: CancellationToken) {
        let mut batch: Vec<Comparison> = Vec::with_capacity(self.cfg.batch_max);
        let mut backoff = BACKOFF_MIN;
        loop {
            // Wait for the first comparison of a batch.
            let got = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                n = rx.recv_many(&mut batch, self.cfg.batch_max) => n,
            };
            if got == 0 {
                break; // every sender is gone
            }
            // Then fill it until full or flush_every has passed. The channel is looked at every
            // FILL_POLL instead of waking on each send: a parked receiver costs every sender on
            // the data plane a cross-thread wake-up (a syscall), an unparked one costs nothing.
            let deadline = Instant::now() + self.cfg.flush_every;
            let mut closed = false;
            loop {
                while batch.len() < self.cfg.batch_max {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if closed || batch.len() >= self.cfg.batch_max || now >= deadline {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(FILL_POLL.min(deadline - now)) => {}
                }
            }
            if self.flush(&mut batch).await {
                backoff = BACKOFF_MIN;
            } else {
                // Let the database recover; meanwhile the bounded channel fills and the data
                // plane drops and counts.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            if closed || shutdown.is_cancelled() {
                break;
            }
        }
        // Drain: refuse new sends, then write what is queued. Once a batch fails the rest is
        // counted as dropped unwritten, so a dead database cannot stretch shutdown.
        rx.close();
        let mut healthy = true;
        loop {
            let n = rx.recv_many(&mut batch, self.cfg.batch_max).await;
            if n == 0 {
                break;
            }
            if healthy {
                healthy = self.flush(&mut batch).await;
            } else {
                self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                batch.clear();
            }
        }
        self.log.flush_summary();
    }

    /// Writes and empties `batch`; true on success.
    async fn flush(&mut self, batch: &mut Vec<Comparison>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = batch.len() as u64;
        let (full, counted): (Vec<Comparison>, Vec<Comparison>) = batch.drain(..).partition(|c| {
            c.verdict != Verdict::Same || self.rng.gen::<f64>() < self.cfg.keep_same
        });
        match self.store.write_batch(&full, &counted).await {
            Ok(_) => {
                self.stats.written.fetch_add(n, Ordering::Relaxed);
                if self.stats.failing.swap(false, Ordering::Relaxed) {
                    self.log
                        .recovered(self.stats.dropped.load(Ordering::Relaxed));
                }
                true
            }
            Err(e) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                self.stats.failing.store(true, Ordering::Relaxed);
                self.log.failed(&e, n);
                *self
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(e));
                false
            }
        }
    }
}

/// Rate-limits the writer's failure warnings.
#[derive(Default)]
struct LogLimiter {
    last: Option<Instant>,
    suppressed_batches: u64,
    suppressed_items: u64,
}

impl LogLimiter {
    fn failed(&mut self, e: &StoreError, items: u64) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed_batches += 1;
            self.suppressed_items += items;
            return;
        }
        tracing::warn!(
            error = %e.display_chain(),
            dropped = items,
            suppressed_batches = self.suppressed_batches,
            suppressed_dropped = self.suppressed_items,
            "store write failed; batch dropped"
        );
        self.last = Some(now);
        self.suppressed_batches = 0;
        self.suppressed_items = 0;
    }

    fn recovered(&mut self, dropped_total: u64) {
        tracing::info!(dropped_total, "store writes recovered");
        self.flush_summary();
        self.last = None;
    }

    fn flush_summary(&mut self) {
        if self.suppressed_batches > 0 {
            tracing::warn!(
                batches = self.suppressed_batches,
                dropped = self.suppressed_items,
                "store writes failed (warnings suppressed)"
            );
            self.suppressed_batches = 0;
            self.suppressed_items = 0;
        }
    }
}

/// Starts the retention sweeper: right away and then every `every`, deletes comparisons older
/// than `keep`. Failures are logged and retried at the next tick. Returns when `shutdown` fires.
pub fn spawn_retention(
    store: Arc<dyn ComparisonStore>,
    keep: Duration,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        loop {
            let cutoff = now_ms().saturating_sub(keep_ms);
            let sweep = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = store.delete_older_than(cutoff) => r,
            };
            match sweep {
                Ok(0) => tracing::debug!("retention: nothing to delete"),
                Ok(n) => tracing::info!(deleted = n, "retention: old comparisons deleted"),
                Err(e) => tracing::warn!(error = %e.display_chain(), "retention sweep failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}
