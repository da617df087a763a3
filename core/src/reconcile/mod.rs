//! Reconciliation (pi-platform.md §6): the service finds and finishes what got stuck, and tells
//! the operator what it could not.
//!
//! - [`sweep`]: our own rows. A payment or payout in an intermediate state for longer than
//!   `STUCK_AFTER` gets its job again (the queue may have lost it: Redis flushed, a process
//!   killed between the ledger write and the enqueue). An approved U2A payment with no
//!   transaction, older than `ABANDON_AFTER`, gets the incomplete job: re-read at Pi, cancelled
//!   there if still without a transaction (the Pioneer is unblocked), completed if one is linked.
//!   A row the sweeper re-enqueued [`ReconcileConfig::max_sweeps`] times without progress goes
//!   to `needs_attention`; its history shows every sweep.
//! - [`server`]: `GET /v2/payments/incomplete_server_payments`. Each one that belongs to one of
//!   our payouts (by identifier, or by the payout id in its metadata) is resumed from its stored
//!   step by the payout job; one we do not know is recorded as a finding and never paid.
//! - [`drift`]: the drift report, ledger vs Pi vs chain, for `pi-payments reconcile --report`
//!   and `GET /admin/drift`.
//!
//! [`Reconciler::run_once`] runs the sweep and the server check under the ledger lease
//! [`RECONCILE_LEASE`], so with several worker processes exactly one run happens at a time; after
//! a run the lease is kept for half an interval, so processes ticking at the same moment do not
//! repeat it.

pub mod drift;
pub mod records;
pub mod server;
pub mod sweep;

pub use drift::{
    AttentionItem, Checked, DriftChecker, DriftItem, DriftKind, DriftOptions, DriftReport,
};
pub use records::{FindingRow, RunRow};

use crate::horizon::HorizonClient;
use crate::jobs::{JobQueue, QueueError};
use crate::ledger::{Ledger, LedgerError, now_ms};
use crate::pi_client::{PiClient, PiError};
use std::sync::Arc;
use std::time::Duration;

/// The lease every reconcile run holds.
pub const RECONCILE_LEASE: &str = "reconcile";

/// The finding kind of an incomplete server payment no payout of ours matches.
pub const UNKNOWN_SERVER_PAYMENT: &str = "unknown_incomplete_server_payment";

/// The finding kind of an incomplete server payment whose payout is settled here (completed,
/// failed, needs attention) while Pi still shows it open.
pub const SETTLED_BUT_OPEN_AT_PI: &str = "payout_settled_but_open_at_pi";

/// `RECONCILE_EVERY`'s default.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// `STUCK_AFTER`'s default.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(120);
/// `ABANDON_AFTER`'s default: well past the Pi SDK's own timers, so a Pioneer still signing in
/// the wallet is not cut off.
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(300);

/// Tunables of reconciliation. `Default` is what production uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `RECONCILE_EVERY`: how often a run is due (the lease's cool-down is half of it).
    pub every: Duration,
    /// `STUCK_AFTER`: an in-flight row unchanged this long gets its job again.
    pub stuck_after: Duration,
    /// `ABANDON_AFTER`: an approved U2A payment without a transaction this old is re-read at
    /// Pi and cancelled there if still without one.
    pub abandon_after: Duration,
    /// Sweeps in a row without progress before a row goes to `needs_attention`.
    pub max_sweeps: i64,
    /// Rows of each kind one sweep looks at, at most (the next run takes the rest).
    pub batch: i64,
    /// How long a run may hold the lease before another process may take it over (the run
    /// renews it as it goes).
    pub lease_ttl: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            every: DEFAULT_RECONCILE_EVERY,
            stuck_after: DEFAULT_STUCK_AFTER,
            abandon_after: DEFAULT_ABANDON_AFTER,
            max_sweeps: 5,
            batch: 500,
            lease_ttl: Duration::from_secs(300),
        }
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading incomplete server payments at Pi failed ({0}); the next run tries again")]
    Pi(#[from] PiError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "the reconcile lease was lost during the run (it took longer than its lease): another process took over; if this repeats, raise the lease time or lower the batch"
    )]
    LeaseLost,
}

/// What one run did (stored as JSON in `reconcile_runs.summary`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// The run's id in `reconcile_runs`.
    pub run_id: i64,
    /// Payments whose job was re-enqueued, as `id:job`.
    pub requeued_payments: Vec<String>,
    /// Payouts whose job was re-enqueued.
    pub requeued_payouts: Vec<String>,
    /// Rows sent to `needs_attention` because sweeping did not move them.
    pub gave_up: Vec<String>,
    /// Incomplete server payments Pi listed.
    pub server_payments: u64,
    /// Of those, payouts of ours resumed through their job.
    pub server_resumed: Vec<String>,
    /// Of those, payouts of ours waiting for a retry time they chose (left to it).
    pub server_waiting: Vec<String>,
    /// Of those, ones we do not know (reported, never paid).
    pub server_unknown: Vec<String>,
    /// Of those, ones whose payout is settled here (reported).
    pub server_settled: Vec<String>,
    /// Parts that failed (the rest of the run still happened).
    pub errors: Vec<String>,
}

/// What [`Reconciler::run_once`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// This process held the lease and ran.
    Ran(RunSummary),
    /// Another run holds the lease (or finished within the cool-down): nothing was done.
    Skipped {
        /// Who holds it, if known.
        holder: Option<String>,
    },
}

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

    /// The drift checker over the same ledger, Pi and Horizon.
    pub fn drift_checker(&self) -> DriftChecker {
        DriftChecker::new(
            self.ledger.clone(),
            self.pi.clone(),
            self.horizon.clone(),
            self.app_wallet.clone(),
            DriftOptions {
                stuck_after: self.config.stuck_after,
                ..DriftOptions::default()
            },
        )
    }

    /// One reconcile run, if the lease is free: sweep our stuck rows, then resume or report
    /// Pi's incomplete server payments. `holder` names this process (a nonce is added, so a
    /// lease is never mistaken for another run's).
    pub async fn run_once(&self, holder: &str) -> Result<RunOutcome, ReconcileError> {
        let nonce: u32 = rand::random();
        let holder = format!("{holder}:{nonce:08x}");
        let started = now_ms();
        if !self
            .ledger
            .try_lease(RECONCILE_LEASE, &holder, self.config.lease_ttl)
            .await?
        {
            let current = self.ledger.lease(RECONCILE_LEASE).await?;
            return Ok(RunOutcome::Skipped {
                holder: current.map(|l| l.holder),
            });
        }
        let result = self.run_holding(&holder, started).await;
        // Keep the lease for half an interval after the start: processes whose tick fires a
        // moment later skip instead of repeating the run.
        let keep_until = started.saturating_add(ms(self.config.every) / 2);
        let keep = (keep_until > now_ms()).then_some(keep_until);
        if let Err(e) = self
            .ledger
            .release_lease(RECONCILE_LEASE, &holder, keep)
            .await
        {
            tracing::warn!(error = %e, "could not release the reconcile lease; it expires on its own");
        }
        result.map(RunOutcome::Ran)
    }

    async fn run_holding(&self, holder: &str, started: i64) -> Result<RunSummary, ReconcileError> {
        let run_id = self.ledger.start_reconcile_run(holder, started).await?;
        let mut summary = RunSummary {
            run_id,
            ..RunSummary::default()
        };
        let outcome = self.phases(holder, &mut summary).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        let json = serde_json::to_value(&summary).unwrap_or_default();
        self.ledger
            .finish_reconcile_run(run_id, &json, error.as_deref())
            .await?;
        if summary.errors.is_empty() && error.is_none() {
            tracing::info!(
                run_id,
                requeued_payments = summary.requeued_payments.len(),
                requeued_payouts = summary.requeued_payouts.len(),
                gave_up = summary.gave_up.len(),
                server_payments = summary.server_payments,
                unknown = summary.server_unknown.len(),
                "reconcile run finished"
            );
        } else {
            tracing::warn!(run_id, errors = ?summary.errors, error = ?error, "reconcile run finished with errors");
        }
        outcome.map(|()| summary)
    }

    async fn phases(&self, holder: &str, summary: &mut RunSummary) -> Result<(), ReconcileError> {
        let mut enqueued = std::collections::HashSet::new();
        if let Err(e) = sweep::sweep(self, summary, &mut enqueued).await {
            summary.errors.push(format!("sweep: {e}"));
        }
        // Still ours? (A run slower than its lease must not go on beside its successor.)
        if !self
            .ledger
            .renew_lease(RECONCILE_LEASE, holder, self.config.lease_ttl)
            .await?
        {
            return Err(ReconcileError::LeaseLost);
        }
        if let Err(e) = server::reconcile_server_payments(self, summary, &enqueued).await {
            summary
                .errors
                .push(format!("incomplete server payments: {e}"));
        }
        Ok(())
    }
}
