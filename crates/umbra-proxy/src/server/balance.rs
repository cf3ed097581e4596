//! Evens out open client connections across the proxy workers.
//!
//! Each worker accepts on its own `SO_REUSEPORT` socket, and the kernel spreads connections by
//! a hash of their addresses: 32 keep-alive connections land 19/13 as often as 16/16, and the
//! busier worker then sets everyone's tail latency. So a worker that accepts a connection while
//! it holds more than another worker does (by more than one) hands the socket over to the
//! least loaded one, which serves it from then on. Only accepting costs anything; requests
//! never cross threads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Where a worker receives the sockets others hand it.
pub type Inbox = mpsc::UnboundedReceiver<std::net::TcpStream>;

/// The open-connection counts of all workers, and a way to hand a socket to each.
pub struct Balance {
    open: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
}

impl Balance {
    /// One counter and inbox per worker; returns each worker's receiving end, in order.
    pub fn new(workers: usize) -> (Arc<Balance>, Vec<Inbox>) {
        let (inboxes, receivers) = (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Balance {
            open: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
        };
        (Arc::new(balance), receivers)
    }

    /// Where a connection accepted by worker `me` should be served: `me`, or a worker holding
    /// at least two fewer connections.
    pub fn target(&self, me: usize) -> usize {
        let mine = self.open[me].load(Ordering::Relaxed);
        let (least, count) = self
            .open
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.load(Ordering::Relaxed)))
            .min_by_key(|&(i, n)| (n, i != me))
            .unwrap_or((me, mine));
        if count + 1 < mine {
            least
        } else {
            me
        }
    }

    /// Gives `stream` to worker `to`, counted as open there at once (a burst of accepts must
    /// not send everything to a worker that has not yet picked up what it was handed); hands
    /// the stream back if that worker is gone.
    pub fn hand_over(
        &self,
        to: usize,
        stream: std::net::TcpStream,
    ) -> Result<(), std::net::TcpStream> {
        self.open[to].fetch_add(1, Ordering::Relaxed);
        self.inboxes[to].send(stream).map_err(|e| {
            self.open[to].fetch_sub(1, Ordering::Relaxed);
            e.0
        })
    }

    /// Counts a connection as open on `worker` until the guard is dropped.
    pub fn open(self: &Arc<Self>, worker: usize) -> OpenGuard {
        self.open[worker].fetch_add(1, Ordering::Relaxed);
        self.adopt(worker)
    }

    /// The guard for a connection handed to `worker` (already counted by `hand_over`).
    pub fn adopt(self: &Arc<Self>, worker: usize) -> OpenGuard {
        OpenGuard {
            balance: self.clone(),
            worker,
        }
    }
}

/// One worker's place among the others: its index, the shared counts, and the inbox of
/// connections other workers hand it.
pub struct Lane {
    me: usize,
    balance: Arc<Balance>,
    inbox: Inbox,
}

impl Lane {
    pub fn new(me: usize, balance: Arc<Balance>, inbox: Inbox) -> Lane {
        Lane { me, balance, inbox }
    }

    /// A connection this worker accepted, to serve here (with its guard), or None when it
    /// went to a worker holding fewer connections (or could not be handed over and is gone).
    pub fn keep_or_hand_over(&self, stream: TcpStream) -> Option<(TcpStream, OpenGuard)> {
        let to = self.balance.target(self.me);
        if to == self.me {
            return Some((stream, self.balance.open(self.me)));
        }
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not hand a connection over");
                return None;
            }
        };
        let back = self.balance.hand_over(to, std).err()?;
        let stream = TcpStream::from_std(back).ok()?;
        Some((stream, self.balance.open(self.me)))
    }

    /// The next connection another worker handed here: None once no worker can hand any more;
    /// Some(None) for one that is already gone.
    pub async fn handed(&mut self) -> Option<Option<(TcpStream, SocketAddr, OpenGuard)>> {
        let std = self.inbox.recv().await?;
        let open = self.balance.adopt(self.me);
        let served = TcpStream::from_std(std).and_then(|s| {
            let peer = s.peer_addr()?;
            Ok((s, peer, open))
        });
        Some(
            served
                .map_err(|e| tracing::debug!(error = %e, "a handed-over connection is gone"))
                .ok(),
        )
    }
}

/// One open connection on one worker.
pub struct OpenGuard {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.balance.open[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_worker_ahead_by_two_hands_over_and_to_the_least_loaded() {
        let (b, _rx) = Balance::new(3);
        assert_eq!(b.target(0), 0, "all empty: keep it");
        let g0 = [b.open(0), b.open(0)];
        assert_eq!(b.target(0), 1, "2 against 0: the first of the least loaded");
        let _g1 = b.open(1);
        let _g2 = [b.open(2), b.open(2)];
        assert_eq!(b.target(0), 0, "2 against 1: within one, keep it");
        assert_eq!(b.target(2), 2);
        drop(g0);
        assert_eq!(b.target(2), 0, "2 against 0 again");
        assert_eq!(b.target(1), 1);
    }

    #[test]
    fn a_handed_over_socket_arrives_in_the_targets_inbox() {
        let (b, mut rx) = Balance::new(2);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let port = s.local_addr().unwrap().port();
        let _busy = [b.open(0), b.open(0)];
        assert_eq!(b.target(0), 1);
        b.hand_over(1, s).unwrap();
        assert_eq!(
            b.target(0),
            0,
            "counted on worker 1 before it picks the socket up"
        );
        let got = rx[1].try_recv().expect("in worker 1's inbox");
        assert_eq!(got.local_addr().unwrap().port(), port);
        assert!(rx[0].try_recv().is_err());
        drop(b.adopt(1));
        assert_eq!(
            b.open[1].load(Ordering::Relaxed),
            0,
            "the adopted guard uncounts it"
        );
        drop(rx);
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(
            b.hand_over(0, s).is_err(),
            "a worker that is gone gives it back"
        );
        assert_eq!(b.open[0].load(Ordering::Relaxed), 2, "and is not counted");
    }
}
