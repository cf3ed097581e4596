//! Sign-in throttling (control plane): after [`MAX_FAILURES`] wrong tokens from one client
//! within [`WINDOW`], `POST /ui/login` answers 429 with `Retry-After` until the window ends,
//! whatever token it is given, so the token cannot be guessed at speed. Clients are told apart
//! by IP address (IPv6 by its /64, which one host usually owns whole).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens a client may send per window.
pub const MAX_FAILURES: u32 = 5;

/// The window that failures count in, from the first failure.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Clients tracked at most; beyond that, new clients share one window.
pub const MAX_CLIENTS: usize = 4096;

#[derive(Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// The key of a client: its IPv4 address, or the /64 of its IPv6 address.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Where clients go when the table is full (never a real client's key).
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

impl LoginThrottle {
    /// `Err(retry_after)` when `ip` has used up its failures in the current window.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get(&key(ip)).or_else(|| {
            windows
                .get(&OVERFLOW)
                .filter(|_| windows.len() >= MAX_CLIENTS)
        });
        match w {
            Some(w) if w.failures >= MAX_FAILURES && now < w.start + WINDOW => {
                Err(w.start + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut k = key(ip);
        if !windows.contains_key(&k) && windows.len() >= MAX_CLIENTS {
            windows.retain(|_, w| now < w.start + WINDOW);
            if windows.len() >= MAX_CLIENTS {
                k = OVERFLOW;
            }
        }
        let w = windows.entry(k).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now >= w.start + WINDOW {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures += 1;
    }

    /// A right token from `ip` clears its failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&key(ip));
    }
}

/// Seconds for `Retry-After`: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn locks_a_client_out_for_the_rest_of_the_window() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(t.check(A, t0), Ok(()), "attempt {i}");
            t.failed(A, t0);
        }
        let later = t0 + Duration::from_secs(20);
        assert_eq!(t.check(A, later), Err(WINDOW - Duration::from_secs(20)));
        assert_eq!(
            t.check(B, later),
            Ok(()),
            "another client is not locked out"
        );
        assert_eq!(t.check(A, t0 + WINDOW), Ok(()), "the window ended");
    }

    #[test]
    fn a_new_window_starts_after_the_old_one() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(A, t0);
        }
        t.failed(A, t0 + WINDOW);
        assert_eq!(t.check(A, t0 + WINDOW), Ok(()));
    }

    #[test]
    fn success_clears_and_ipv6_counts_per_64() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            t.failed(ip, now);
        }
        let neighbour: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(t.check(neighbour, now).is_err());
        t.succeeded(neighbour);
        assert_eq!(t.check(neighbour, now), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(40_001)), 41);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
