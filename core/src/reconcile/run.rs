//! One reconcile run under the ledger lease [`RECONCILE_LEASE`]: the sweep, then Pi's incomplete
//! server payments, recorded as a line of `reconcile_runs`.

use super::config::ms;
use super::error::ReconcileError;
use super::reconciler::Reconciler;
use super::summary::RunSummary;
use super::{server, sweep};
use crate::ledger::now_ms;

/// The lease every reconcile run holds.
pub const RECONCILE_LEASE: &str = "reconcile";

/// What [`Reconciler::run_once`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// This process held the lease and ran.
    Ran(Box<RunSummary>),
    /// Another run holds the lease (or finished within the cool-down): nothing was done.
    Skipped {
        /// Who holds it, if known.
        holder: Option<String>,
    },
}

impl Reconciler {
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
        // Renewed while the run lasts (however slow Pi is); stopped before the release.
        let kept = self
            .ledger
            .keep_lease(RECONCILE_LEASE, &holder, self.config.lease_ttl);
        let result = self.run_holding(&holder, started).await;
        drop(kept);
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
        result.map(|s| RunOutcome::Ran(Box::new(s)))
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
