//! The data plane's end of the bounded queue to the store: comparisons are offered with
//! `try_send` only, and a full or closed queue drops and counts them. Nothing on the request
//! path can wait on the database.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use umbra_diff::Comparison;

/// The data plane's end of the queue to the store: `try_send` only.
pub struct ComparisonSink {
    tx: Option<mpsc::Sender<Comparison>>,
    dropped: AtomicU64,
    capacity: usize,
}

impl ComparisonSink {
    pub fn new(capacity: usize) -> (ComparisonSink, mpsc::Receiver<Comparison>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            ComparisonSink {
                tx: Some(tx),
                dropped: AtomicU64::new(0),
                capacity: capacity.max(1),
            },
            rx,
        )
    }

    /// A sink that drops everything (for runs without a store).
    pub fn disabled() -> ComparisonSink {
        ComparisonSink {
            tx: None,
            dropped: AtomicU64::new(0),
            capacity: 0,
        }
    }

    /// Queues a comparison, or drops and counts it when the queue is full or closed.
    pub fn submit(&self, c: Comparison) -> bool {
        let ok = self.tx.as_ref().is_some_and(|tx| tx.try_send(c).is_ok());
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn depth(&self) -> usize {
        self.tx
            .as_ref()
            .map_or(0, |tx| self.capacity - tx.capacity())
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
