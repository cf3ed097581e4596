//! A route's rate limit: one token bucket per key (client IP or a header's value), kept in a
//! sharded map so that workers rarely wait on one another. Memory is bounded: a shard that
//! is full first forgets its idle keys (a bucket refilled to the brim is the same as none),
//! and only then an arbitrary one. Read by the data plane on every request of the route;
//! kept across snapshots while the route's limit stays the same.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitSpec;

/// Shards of the key map (a power of two).
const SHARDS: usize = 16;
/// Keys tracked at most, all shards together.
const MAX_KEYS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Nanoseconds since the limiter's epoch when `tokens` was last brought up to date.
    at: u64,
}

/// One shard's buckets, by key.
type Buckets = HashMap<Box<[u8]>, Bucket>;

/// Token buckets by key for one route.
#[derive(Debug)]
pub struct RateLimiter {
    spec: RateLimitSpec,
    epoch: Instant,
    /// SipHash with a random key: the keys are the clients' to choose.
    hasher: RandomState,
    shards: Box<[Mutex<Buckets>]>,
    per_shard: usize,
}

impl RateLimiter {
    pub fn new(spec: RateLimitSpec) -> RateLimiter {
        RateLimiter::with_capacity(spec, MAX_KEYS)
    }

    /// A limiter that tracks about `keys` keys at most.
    pub fn with_capacity(spec: RateLimitSpec, keys: usize) -> RateLimiter {
        RateLimiter {
            spec,
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: keys.div_ceil(SHARDS).max(1),
        }
    }

    pub fn spec(&self) -> &RateLimitSpec {
        &self.spec
    }

    /// Takes a token from `key`'s bucket: `Ok`, or `Err(seconds)` to wait until one is there
    /// (whole seconds, at least 1, for `Retry-After`).
    pub fn check(&self, key: &[u8]) -> Result<(), u64> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.check_at(key, now)
    }

    /// `check` at `now` nanoseconds since the epoch.
    pub fn check_at(&self, key: &[u8], now: u64) -> Result<(), u64> {
        let shard = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        let mut map = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = map.get_mut(key) {
            return self.take(bucket, now);
        }
        if map.len() >= self.per_shard {
            self.evict(&mut map, now);
        }
        let mut bucket = Bucket {
            tokens: f64::from(self.spec.burst),
            at: now,
        };
        let verdict = self.take(&mut bucket, now);
        map.insert(key.into(), bucket);
        verdict
    }

    /// Keys tracked now (for tests and status).
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    fn refilled(&self, b: &Bucket, now: u64) -> f64 {
        let elapsed = now.saturating_sub(b.at) as f64 / 1e9;
        (b.tokens + elapsed * self.spec.rps).min(f64::from(self.spec.burst))
    }

    fn take(&self, b: &mut Bucket, now: u64) -> Result<(), u64> {
        b.tokens = self.refilled(b, now);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - b.tokens) / self.spec.rps;
        Err((wait.ceil() as u64).max(1))
    }

    /// Makes room in a full shard: the idle keys (full buckets) go; if none is idle, one
    /// arbitrary key does (it starts again with a full bucket).
    fn evict(&self, map: &mut Buckets, now: u64) {
        let burst = f64::from(self.spec.burst);
        map.retain(|_, b| self.refilled(b, now) < burst);
        if map.len() >= self.per_shard {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateKey;

    const SEC: u64 = 1_000_000_000;

    fn limiter(rps: f64, burst: u32, keys: usize) -> RateLimiter {
        RateLimiter::with_capacity(
            RateLimitSpec {
                rps,
                burst,
                key: RateKey::ClientIp,
            },
            keys,
        )
    }

    #[test]
    fn a_burst_then_the_rate() {
        let l = limiter(2.0, 3, 100);
        for _ in 0..3 {
            assert_eq!(l.check_at(b"a", 0), Ok(()));
        }
        assert_eq!(
            l.check_at(b"a", 0),
            Err(1),
            "empty: half a second to wait, said as 1"
        );
        assert_eq!(
            l.check_at(b"b", 0),
            Ok(()),
            "another key has its own bucket"
        );
        assert_eq!(l.check_at(b"a", SEC / 2), Ok(()), "one token after 1/rps");
        assert!(l.check_at(b"a", SEC / 2).is_err());
        assert_eq!(l.check_at(b"a", 10 * SEC), Ok(()));
        for _ in 0..2 {
            assert_eq!(
                l.check_at(b"a", 10 * SEC),
                Ok(()),
                "refilled to the burst, not past it"
            );
        }
        assert!(l.check_at(b"a", 10 * SEC).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_until_a_token() {
        let l = limiter(0.25, 1, 100);
        assert_eq!(l.check_at(b"a", 0), Ok(()));
        assert_eq!(l.check_at(b"a", 0), Err(4));
        assert_eq!(l.check_at(b"a", SEC), Err(3));
        assert_eq!(l.check_at(b"a", 4 * SEC), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_go_first() {
        let l = limiter(1.0, 2, SHARDS * 4);
        for i in 0..10_000u32 {
            let _ = l.check_at(&i.to_be_bytes(), 0);
        }
        assert!(l.keys() <= SHARDS * 4, "{} keys", l.keys());
        let before = l.keys();
        // Past burst/rps every bucket is full again: a full shard forgets them, not the new key.
        assert_eq!(l.check_at(b"late", 5 * SEC), Ok(()));
        assert!(
            l.keys() < before,
            "idle keys went: {before} -> {}",
            l.keys()
        );
        assert_eq!(l.check_at(b"late", 5 * SEC), Ok(()));
        assert!(
            l.check_at(b"late", 5 * SEC).is_err(),
            "the new key is tracked"
        );
    }
}
