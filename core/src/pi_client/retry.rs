//! Bounded retries for calls to Pi, built on `backon`.
//!
//! Transient failures (429, 5xx, timeouts, dropped connections; see
//! [`PiError::is_retryable`]) are retried with exponential backoff and *full* jitter (each
//! delay is uniform in `0..=min(max_delay, base_delay * 2^n)`), so many workers hitting the
//! same outage do not retry in lockstep. A 429's `Retry-After` is honoured: the next attempt
//! waits at least that long, and a `Retry-After` beyond [`RetryPolicy::max_retry_after`] ends
//! the retries at once (the caller reschedules with [`PiError::retry_after`]). Business errors
//! (4xx) are never retried: asking again gives the same answer.

use super::error::PiError;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use rand::Rng;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How often and how patiently a call to Pi is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries). 0 is treated as 1.
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubles with each retry.
    pub base_delay: Duration,
    /// The backoff ceiling never grows past this.
    pub max_delay: Duration,
    /// Give up instead of sleeping when a 429's `Retry-After` asks for longer than this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 200 ms doubling to at most 10 s, `Retry-After` honoured up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Millisecond backoffs for tests (5 attempts, 1 ms → 20 ms); `Retry-After` still honoured.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// A single attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::fast()
        }
    }

    /// The delays between attempts: exponential ceilings with full jitter applied.
    fn backoff(&self) -> impl backon::Backoff + use<> {
        let retries = self.max_attempts.max(1) - 1;
        ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(retries as usize)
            .build()
            .map(full_jitter)
    }

    /// Combine the backoff's proposal with the error's `Retry-After`.
    fn adjust(&self, err: &PiError, proposed: Option<Duration>) -> Option<Duration> {
        let proposed = proposed?; // attempts used up
        match err.retry_after() {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(proposed.max(wait)),
            None => Some(proposed),
        }
    }
}

/// Uniform in `0..=ceiling` ("full jitter").
fn full_jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
}

/// Run `attempt` (given the 1-based attempt number) under `policy`.
///
/// Returns the first success, the first non-retryable error as it is, or — when retries are
/// exhausted (or a `Retry-After` is too long) — [`PiError::RetriesExhausted`] carrying the
/// attempts made and the last error.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<T, PiError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, PiError>>,
{
    let made = AtomicU32::new(0);
    let result = (|| attempt(made.fetch_add(1, Ordering::Relaxed) + 1))
        .retry(policy.backoff())
        .when(PiError::is_retryable)
        .adjust(|err, proposed| policy.adjust(err, proposed))
        .notify(|err, wait| {
            tracing::debug!(
                attempt = made.load(Ordering::Relaxed),
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "Pi call failed, retrying"
            );
        })
        .await;
    result.map_err(|err| {
        if err.is_retryable() {
            PiError::RetriesExhausted {
                attempts: made.load(Ordering::Relaxed),
                last: Box::new(err),
            }
        } else {
            err
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::pi_client::error::PiError;
    use crate::pi_client::retry::*;

    #[test]
    fn backoff_is_bounded_and_jittered_below_ceiling() {
        let p = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = p.backoff().collect();
        assert_eq!(delays.len(), 5, "max_attempts counts the first try");
        let ceilings = [100, 200, 300, 300, 300];
        for (d, c) in delays.iter().zip(ceilings) {
            assert!(*d <= Duration::from_millis(c), "{d:?} > {c} ms");
        }
        assert_eq!(RetryPolicy::none().backoff().count(), 0);
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        let p = RetryPolicy::fast();
        let e = PiError::TooManyRequests {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            p.adjust(&e, Some(Duration::ZERO)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.adjust(&e, None), None);
        let long = PiError::TooManyRequests {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(p.adjust(&long, Some(Duration::ZERO)), None);
    }

    #[tokio::test]
    async fn counts_attempts_and_wraps_the_last_error() {
        let calls = AtomicU32::new(0);
        let r: Result<(), PiError> = with_retries(&RetryPolicy::fast(), |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(PiError::Timeout) }
        })
        .await;
        assert_eq!(calls.load(Ordering::Relaxed), 5);
        match r {
            Err(PiError::RetriesExhausted { attempts: 5, last }) => {
                assert!(matches!(*last, PiError::Timeout))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn business_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), PiError> = with_retries(&RetryPolicy::fast(), |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(PiError::CancelledPayment) }
        })
        .await;
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(matches!(r, Err(PiError::CancelledPayment)));
    }
}
