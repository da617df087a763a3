//! The metrics read from the ledger and the queue rather than counted as things happen
//! (payments and payouts by state, queue depth), refreshed when `/metrics` is scraped, at most
//! every [`REFRESH_EVERY`]. Its own module so that the API's state can hold one without
//! importing the `/metrics` route, which reads that state.

use pi_payments_core::jobs::JobQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::telemetry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the ledger and queue gauges are reused before a scrape reads them again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How long a scrape waits for the ledger or the queue before it shows the last values.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The gauges read from the ledger and the queue, refreshed at most every [`REFRESH_EVERY`].
/// One per router; clones share the refresh time.
#[derive(Clone, Debug, Default)]
pub struct ScrapeGauges {
    last: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl ScrapeGauges {
    /// Read payments and payouts by state and the queue's depth, unless they were read within
    /// [`REFRESH_EVERY`] or another scrape is reading them now. A source that fails or does
    /// not answer in time keeps its last values (and counts a scrape error).
    pub async fn refresh(&self, ledger: &Ledger, queue: &dyn JobQueue) {
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let (payments, payouts, depths) = tokio::join!(
            tokio::time::timeout(READ_TIMEOUT, ledger.payment_state_counts()),
            tokio::time::timeout(READ_TIMEOUT, ledger.payout_state_counts()),
            tokio::time::timeout(READ_TIMEOUT, queue.depths()),
        );
        match (payments, payouts) {
            (Ok(Ok(payments)), Ok(Ok(payouts))) => {
                telemetry::set_payment_states(&payments);
                telemetry::set_payout_states(&payouts);
            }
            _ => {
                tracing::warn!("reading payment and payout states for /metrics failed");
                telemetry::record_scrape_error("ledger");
            }
        }
        match depths {
            Ok(Ok(depths)) => telemetry::set_queue_depths(&depths),
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading the queue's depth for /metrics failed");
                telemetry::record_scrape_error("queue");
            }
            Err(_) => {
                tracing::warn!("the queue's depth did not come in time for /metrics");
                telemetry::record_scrape_error("queue");
            }
        }
    }
}
