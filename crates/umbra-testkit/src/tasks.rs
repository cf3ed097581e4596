//! Task ownership for test servers (test side): everything a server spawns dies with it.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks of one test server. Cancelling stops them all at their next poll; `shutdown` also
/// waits until they are gone, so the listener is closed when it returns.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// Spawns `fut` on the current runtime; it is dropped when the server is cancelled.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let token = self.token.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    pub(crate) fn cancel(&self) {
        self.token.cancel();
    }

    pub(crate) async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Runs hyper's HTTP/2 stream tasks under the server's [`Tasks`], so a hung h2 stream does not
/// outlive its fixture.
#[derive(Clone)]
pub(crate) struct TrackedExec(pub(crate) Tasks);

impl<F> hyper::rt::Executor<F> for TrackedExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}
