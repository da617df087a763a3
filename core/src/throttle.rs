//! Throttling is waiting, not failing.
//!
//! A server that answers 429 (with or without `Retry-After`), 503, or does not answer in time is
//! asking us to slow down: nothing is wrong with the payment. [`Throttle`] is that outcome, told
//! apart from real failures by [`Throttling::throttle`]; the U2A steps and the payout pipeline
//! wait [`Throttle::delay`] and run the step again without counting a failed attempt, so
//! throttling alone never moves a payment to `needs_attention`. While it waits, the row's
//! `next_check_at` keeps the sweeper off it (see `crate::reconcile::sweep`).

use rand::Rng;
use std::time::Duration;

/// The longest single wait, whatever the server's `Retry-After` says: the step then asks again
/// (and may be told to wait again), so a bogus header cannot park a payment for a day.
pub const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(300);

/// A server asked us to slow down (429, 503, or it did not answer in time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// The server's `Retry-After`, when it sent a readable one.
    pub retry_after: Option<Duration>,
}

impl Throttle {
    /// How long to wait before asking again, after `throttles` throttled tries in a row (0 for
    /// the first): the server's `Retry-After` when it sent one, otherwise an exponential backoff
    /// from `base` up to `max` with jitter (each delay in the upper half of its ceiling, so many
    /// waiting jobs do not come back in lockstep). Never more than [`MAX_THROTTLE_WAIT`].
    pub fn delay(&self, throttles: u32, base: Duration, max: Duration) -> Duration {
        let wait = match self.retry_after {
            Some(wait) => wait,
            None => {
                let ceiling = base
                    .saturating_mul(2u32.saturating_pow(throttles.min(16)))
                    .min(max.max(base));
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rand::thread_rng().gen_range(nanos / 2..=nanos))
            }
        };
        wait.min(MAX_THROTTLE_WAIT)
    }
}

/// An error that may be a [`Throttle`] rather than a failure.
pub trait Throttling: std::fmt::Display {
    /// `Some` when the error only says "slow down" (429, 503, timeout): wait, do not count it.
    fn throttle(&self) -> Option<Throttle>;
}

/// Whether an HTTP status says "slow down": 429, 503, or a gateway timeout (504).
pub fn is_throttling_status(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use crate::throttle::*;

    #[test]
    fn retry_after_wins_and_is_capped() {
        let t = Throttle {
            retry_after: Some(Duration::from_secs(3)),
        };
        let base = Duration::from_millis(10);
        assert_eq!(t.delay(5, base, base), Duration::from_secs(3));
        let long = Throttle {
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(long.delay(0, base, base), MAX_THROTTLE_WAIT);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_max() {
        let t = Throttle { retry_after: None };
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(400);
        for (n, ceiling) in [(0, 100), (1, 200), (2, 400), (9, 400)] {
            let d = t.delay(n, base, max);
            let c = Duration::from_millis(ceiling);
            assert!(d <= c && d >= c / 2, "{n}: {d:?} not in {c:?}/2..={c:?}");
        }
    }

    #[test]
    fn throttling_statuses() {
        assert!(is_throttling_status(429) && is_throttling_status(503));
        assert!(!is_throttling_status(500) && !is_throttling_status(400));
    }
}
