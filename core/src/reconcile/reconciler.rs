//! The [`Reconciler`]: what a reconcile run works with (ledger, Pi, Horizon, the queue) and its
//! tunables. The run itself is [`super::run`]; its phases are [`super::sweep`] and
//! [`super::server`].

use super::config::ReconcileConfig;
use crate::horizon::HorizonClient;
use crate::jobs::JobQueue;
use crate::ledger::Ledger;
use crate::pi_client::PiClient;
use std::sync::Arc;

/// Runs reconciliation. Cheap to clone.
#[derive(Clone)]
pub struct Reconciler {
    pub(crate) ledger: Ledger,
    pub(crate) pi: PiClient,
    pub(crate) horizon: HorizonClient,
    pub(crate) app_wallet: String,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) config: ReconcileConfig,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("app_wallet", &self.app_wallet)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler over the ledger, Pi, Horizon and the queue jobs are re-enqueued on.
    pub fn new(
        ledger: Ledger,
        pi: PiClient,
        horizon: HorizonClient,
        app_wallet: String,
        queue: Arc<dyn JobQueue>,
        config: ReconcileConfig,
    ) -> Reconciler {
        Reconciler {
            ledger,
            pi,
            horizon,
            app_wallet,
            queue,
            config,
        }
    }

    /// The tunables.
    pub fn config(&self) -> &ReconcileConfig {
        &self.config
    }
}
