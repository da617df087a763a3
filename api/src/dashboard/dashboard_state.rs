//! What the dashboard keeps besides the ledger, in its own module so that the API's state can
//! hold it without importing the dashboard's routes, which read that state.

use pi_payments_core::rate_limit::PiRateLimiter;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What the dashboard keeps besides the ledger: the Pi limiter it reads the call rate from,
/// and the gate that lets one drift report run at a time in this process (each one reads Pi
/// once per payment it compares).
#[derive(Clone, Debug)]
pub struct DashboardState {
    pi_limiter: Option<Arc<PiRateLimiter>>,
    drift_gate: Arc<Semaphore>,
}

impl Default for DashboardState {
    fn default() -> DashboardState {
        DashboardState {
            pi_limiter: None,
            drift_gate: Arc::new(Semaphore::new(1)),
        }
    }
}

impl DashboardState {
    /// Read the Pi call rate from `limiter` (the process's Pi client's).
    pub fn with_pi_limiter(mut self, limiter: Arc<PiRateLimiter>) -> DashboardState {
        self.pi_limiter = Some(limiter);
        self
    }

    /// The Pi limiter, when this API has a Pi client.
    pub fn pi_limiter(&self) -> Option<&Arc<PiRateLimiter>> {
        self.pi_limiter.as_ref()
    }

    /// The drift gate (one report at a time).
    pub(crate) fn drift_gate(&self) -> &Arc<Semaphore> {
        &self.drift_gate
    }
}
