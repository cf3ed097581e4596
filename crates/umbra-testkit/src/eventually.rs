//! Bounded polling for what lands asynchronously, such as shadow requests (test side).

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] and [`assert_eventually!`](crate::assert_eventually) re-check.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `cond` every [`POLL_INTERVAL`] until it returns true; panics if it has not within
/// `timeout`.
///
/// ```no_run
/// # async fn demo(shadow: umbra_testkit::Fixture) {
/// use std::time::Duration;
/// umbra_testkit::eventually(Duration::from_secs(2), || async { shadow.hits() == 1 }).await;
/// # }
/// ```
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            panic!("eventually: condition not met within {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Asserts that a condition becomes true within a timeout, re-evaluating it every 20 ms. Use it in
/// async code; the condition may itself `.await`.
///
/// ```no_run
/// # async fn demo(shadow: umbra_testkit::Fixture) {
/// use std::time::Duration;
/// use umbra_testkit::assert_eventually;
/// assert_eventually!(shadow.hits() == 1);                                  // 5 s default
/// assert_eventually!(shadow.hits() == 1, timeout = Duration::from_secs(2));
/// assert_eventually!(shadow.hits() == 1, timeout = Duration::from_secs(2), "shadow hits: {}", shadow.hits());
/// assert_eventually!(shadow.hits() == 1, "shadow never hit");
/// # }
/// ```
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!(
            $cond,
            timeout = ::std::time::Duration::from_secs(5),
            "{}",
            ::std::stringify!($cond)
        )
    };
    ($cond:expr, timeout = $timeout:expr $(,)?) => {
        $crate::assert_eventually!($cond, timeout = $timeout, "{}", ::std::stringify!($cond))
    };
    ($cond:expr, timeout = $timeout:expr, $($msg:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        let deadline = $crate::__private::Instant::now() + timeout;
        loop {
            if $cond {
                break;
            }
            let now = $crate::__private::Instant::now();
            if now >= deadline {
                ::std::panic!(
                    "assert_eventually failed after {:?}: {}",
                    timeout,
                    ::std::format!($($msg)+)
                );
            }
            $crate::__private::sleep($crate::POLL_INTERVAL.min(deadline - now)).await;
        }
    }};
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!($cond, timeout = ::std::time::Duration::from_secs(5), $($msg)+)
    };
}
