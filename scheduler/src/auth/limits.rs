//! Per-caller rate limits for writes: a token bucket per principal (`role:name`),
//! refilled at `rate` per second up to `burst`. A write that finds the bucket empty
//! is refused `RESOURCE_EXHAUSTED` with the time until one is allowed, so a runaway
//! script cannot flood the raft log. Reads and the internal services are not
//! limited here (they have their own bounds: page sizes, stream caps).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Callers remembered at most; beyond it the idlest are forgotten (a forgotten
/// caller starts again with a full bucket).
const MAX_CALLERS: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The write limiter; `rate` 0 disables it.
#[derive(Debug)]
pub struct WriteLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl WriteLimiter {
    pub fn new(rate_per_second: f64, burst: f64) -> WriteLimiter {
        WriteLimiter {
            rate: rate_per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one write for `caller`; `Err(wait)` when none is left, `wait` being how
    /// long until one is.
    pub fn take(&self, caller: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .expect("invariant: the limiter lock is never poisoned");
        if buckets.len() >= MAX_CALLERS
            && !buckets.contains_key(caller)
            && let Some(idlest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| k.clone())
        {
            buckets.remove(&idlest);
        }
        let bucket = buckets.entry(caller.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_the_rate() {
        let limiter = WriteLimiter::new(10.0, 3.0);
        for _ in 0..3 {
            assert!(limiter.take("operator:ci").is_ok());
        }
        let wait = limiter.take("operator:ci").unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(
            limiter.take("admin:alice").is_ok(),
            "buckets are per caller"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(limiter.take("operator:ci").is_ok(), "refilled at the rate");
        assert!(limiter.take("operator:ci").is_err());
        assert!(
            WriteLimiter::new(0.0, 1.0).take("x").is_ok(),
            "rate 0: no limit"
        );
    }
}
