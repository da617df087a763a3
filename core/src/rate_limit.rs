//! One shared rate limiter for every call this process makes to the Pi Platform API.
//!
//! Pi documents no rate limit but has one; exceeding it costs 429s and delays for every
//! payment. All `PiClient`s (and their clones) share one `Arc<PiRateLimiter>`, and a permit is
//! taken before *every* attempt, retries included, so retries spend the same budget.
//! It limits one process; several processes need a share of the budget each.

use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;

/// `PI_RATE_LIMIT`'s default: requests per second to Pi.
pub const DEFAULT_PI_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// A smooth requests-per-second limiter for calls to Pi (burst of 1: permits are spaced evenly,
/// so a backlog drains at the configured rate instead of in bursts Pi may reject).
pub struct PiRateLimiter {
    inner: DefaultDirectRateLimiter,
    per_second: NonZeroU32,
}

impl PiRateLimiter {
    /// A limiter allowing `per_second` requests per second, evenly spaced.
    pub fn new(per_second: NonZeroU32) -> PiRateLimiter {
        let quota = Quota::per_second(per_second).allow_burst(NonZeroU32::MIN);
        PiRateLimiter {
            inner: DefaultDirectRateLimiter::direct(quota),
            per_second,
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> NonZeroU32 {
        self.per_second
    }

    /// Wait until one request may be sent. Call before every attempt.
    pub async fn acquire(&self) {
        self.inner.until_ready().await;
    }
}

impl Default for PiRateLimiter {
    /// [`DEFAULT_PI_RATE_LIMIT`] requests per second.
    fn default() -> Self {
        PiRateLimiter::new(DEFAULT_PI_RATE_LIMIT)
    }
}

impl std::fmt::Debug for PiRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiRateLimiter")
            .field("per_second", &self.per_second)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn spaces_permits_evenly() {
        let limiter = PiRateLimiter::new(NonZeroU32::new(20).unwrap());
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // 5 permits with burst 1 at 20/s need at least 4 intervals of 50 ms.
        assert!(start.elapsed() >= std::time::Duration::from_millis(190));
    }
}
