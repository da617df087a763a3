//! The chain's clock, as Horizon shows it: the latest ledger's close time. Envelopes get their
//! `max_time` from it and are declared expired by it, never by this server's clock: with a
//! server clock ahead of the validators', an envelope judged expired here could still land
//! after its replacement (a double payout).

use crate::horizon::{HorizonClient, HorizonError, LedgerHead};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The latest ledger head this process read, shared by all its payouts: one `/ledgers` read
/// per `refresh` (about a ledger) for building envelopes; expiry always reads afresh.
#[derive(Clone, Debug)]
pub struct ChainClock {
    head: Arc<tokio::sync::Mutex<Option<(Instant, LedgerHead)>>>,
    refresh: Duration,
}

impl ChainClock {
    /// A clock that re-reads the ledger head at most once per `refresh` for estimates.
    pub fn new(refresh: Duration) -> ChainClock {
        ChainClock {
            head: Arc::new(tokio::sync::Mutex::new(None)),
            refresh,
        }
    }

    /// The chain's time now, in Unix seconds, estimated from the latest ledger read (its close
    /// time plus the local time elapsed since: a monotonic interval, immune to this server's
    /// clock being off). Never later than a ledger that could close now, so a `max_time`
    /// built on it is not shortened by our clock.
    pub async fn estimate_now(&self, horizon: &HorizonClient) -> Result<i64, HorizonError> {
        // Held across the read: concurrent payouts share one `/ledgers` call.
        let mut cached = self.head.lock().await;
        let (at, head) = match *cached {
            Some((at, head)) if at.elapsed() < self.refresh => (at, head),
            _ => {
                let head = horizon.latest_ledger().await?;
                let at = Instant::now();
                *cached = Some((at, head));
                (at, head)
            }
        };
        let elapsed = i64::try_from(at.elapsed().as_secs()).unwrap_or(i64::MAX);
        Ok(head.closed_at.saturating_add(elapsed))
    }

    /// The estimate without a Horizon read, if a head was ever read (a cheap gate before
    /// [`ChainClock::closed_after`]).
    pub async fn cached_estimate(&self) -> Option<i64> {
        let cached = *self.head.lock().await;
        cached.map(|(at, head)| {
            let elapsed = i64::try_from(at.elapsed().as_secs()).unwrap_or(i64::MAX);
            head.closed_at.saturating_add(elapsed)
        })
    }

    /// Whether a ledger closed after `max_time` (fresh read): the chain's own rule for an
    /// envelope with that bound, which can then never land.
    pub async fn closed_after(
        &self,
        horizon: &HorizonClient,
        max_time: i64,
    ) -> Result<bool, HorizonError> {
        let head = horizon.latest_ledger().await?;
        *self.head.lock().await = Some((Instant::now(), head));
        Ok(head.closed_at > max_time)
    }
}
