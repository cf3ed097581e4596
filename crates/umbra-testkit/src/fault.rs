//! Fault injection below HTTP (test side): connection resets, garbage bytes, a raw garbage
//! server, and the WebSocket accept key.
//!
//! A fixture connection is wrapped in [`HijackIo`]. A fault route records how the connection must
//! end in its [`ConnCtl`] and wakes the connection task, which drops hyper's connection; the
//! wrapper's `Drop` then either writes garbage or arms a TCP reset before the socket closes. This
//! works on any request of a keep-alive connection, not only the first, which matters because a
//! proxy reuses pooled upstream connections.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::tasks::Tasks;

/// The bytes fault endpoints write instead of an HTTP response: a TLS-looking prefix, text that is
/// not a status line, and invalid UTF-8.
pub const GARBAGE: &[u8] = b"\x16\x03\x01\x00\x05NOT-HTTP garbage \xde\xad\xbe\xef\r\n\r\n";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2): base64 of the SHA-1
/// of the key followed by the protocol GUID.
pub fn websocket_accept(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// How a fixture connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Normal close (FIN) when hyper is done.
    Normal,
    /// Close with SO_LINGER 0, so the peer sees a reset, without a response.
    Reset,
    /// Write [`GARBAGE`] then close.
    Garbage,
}

/// Shared between a connection task, its service and its [`HijackIo`].
#[derive(Debug)]
pub(crate) struct ConnCtl {
    ending: Mutex<Ending>,
    kill: Notify,
    gone: CancellationToken,
}

impl ConnCtl {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnCtl {
            ending: Mutex::new(Ending::Normal),
            kill: Notify::new(),
            gone: CancellationToken::new(),
        })
    }

    /// Asks the connection task to drop the connection, ending it as `ending`.
    pub(crate) fn end_with(&self, ending: Ending) {
        *self.ending.lock().expect("ConnCtl lock") = ending;
        self.kill.notify_one();
    }

    /// Resolves once [`ConnCtl::end_with`] was called.
    pub(crate) async fn killed(&self) {
        self.kill.notified().await;
    }

    /// Held by the connection task: marks the connection gone when the task ends.
    pub(crate) fn gone_guard(&self) -> DropGuard {
        self.gone.clone().drop_guard()
    }

    /// Resolves once the connection task has ended; lets handlers that never answer finish.
    pub(crate) async fn gone(&self) {
        self.gone.cancelled().await;
    }

    fn ending(&self) -> Ending {
        *self.ending.lock().expect("ConnCtl lock")
    }
}

/// A TCP stream that applies its connection's [`Ending`] when dropped.
pub(crate) struct HijackIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl HijackIo {
    pub(crate) fn new(inner: TcpStream, ctl: Arc<ConnCtl>) -> Self {
        HijackIo { inner, ctl }
    }
}

impl Drop for HijackIo {
    fn drop(&mut self) {
        match self.ctl.ending() {
            Ending::Normal => {}
            Ending::Reset => {
                let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
            }
            Ending::Garbage => {
                // The send buffer of a socket that is idle between requests takes these few
                // bytes at once; a partial write only shortens the garbage.
                let _ = self.inner.try_write(GARBAGE);
            }
        }
    }
}

impl AsyncRead for HijackIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HijackIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP server that answers every connection with [`GARBAGE`] and closes it. Stops on drop.
pub struct RawServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    tasks: Tasks,
}

impl RawServer {
    pub(crate) async fn start() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let tasks = Tasks::default();
        let (count, spawner) = (connections.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                spawner.spawn(answer_garbage(stream));
            }
        });
        RawServer {
            addr,
            connections,
            tasks,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes open connections; returns once the port is released.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

async fn answer_garbage(mut stream: TcpStream) {
    let patience = Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    // Read what the client sent first, so closing does not turn into a reset over unread data.
    let _ = tokio::time::timeout(patience, stream.read(&mut buf)).await;
    if stream.write_all(GARBAGE).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(patience, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
