//! The `confirmed` and `cancelled` stages: complete the Pi payment with the landed txid
//! (`already_completed` counts only after a GET shows our txid), and close the Pi payment of a
//! withdrawn payout so the Pioneer is not blocked.

use super::error::PayoutError;
use super::fault::CrashPoint;
use super::outcome::{Flow, StepOutcome};
use super::processor::PayoutProcessor;
use crate::ids::Txid;
use crate::ledger::{PayoutApplied, PayoutNote, PayoutPatch, PayoutRow};
use crate::pi_client::PiError;
use crate::state::PayoutTransition;

impl PayoutProcessor {
    pub(super) async fn complete_at_pi(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(hash)) = (&row.pi_payment_id, &row.tx_hash) else {
            return self
                .give_up(
                    row,
                    "payout is confirmed but has no Pi payment or txid stored".into(),
                )
                .await;
        };
        let Ok(txid) = Txid::parse_lenient(hash) else {
            return self
                .give_up(
                    row,
                    format!("stored txid {hash:?} is not a transaction hash"),
                )
                .await;
        };
        match self.pi.complete(pid, &txid).await {
            Ok(_) => {
                self.crash_if(CrashPoint::AfterComplete)?;
                self.completed(row).await
            }
            Err(e) => match e.root() {
                PiError::AlreadyCompleted { .. } => match self.pi.get_payment(pid).await {
                    Ok(dto) if dto.status.developer_completed && dto.txid() == Some(&txid) => {
                        self.completed(row).await
                    }
                    Ok(dto) => {
                        self.give_up(
                            row,
                            format!(
                                "Pi says payment {pid} is completed with transaction {:?}, not ours ({txid}): check both on Horizon",
                                dto.txid().map(Txid::as_str)
                            ),
                        )
                        .await
                    }
                    Err(e2) if e2.is_retryable() => {
                        self.retry_later_on(row, "pi_get_failed", &e2)
                            .await
                    }
                    Err(e2) => self.give_up(row, format!("confirming completion failed: {e2}")).await,
                },
                PiError::NotVerified => {
                    self.retry_later_on(row, "pi_not_verified_yet", &e)
                        .await
                }
                // An unknown verification_error right after our transaction landed may be Pi
                // not having indexed it yet: retried with backoff, counted, so a lasting one
                // ends in needs_attention with Pi's own words after max_attempts.
                PiError::VerificationFailed { verification_error } if !verification_error.is_final() => {
                    self.retry_later(
                        row,
                        "pi_verification_failed",
                        &format!("Pi refused to complete payment {pid} with {txid} (the Pioneer WAS paid on chain): {e}"),
                        None,
                    )
                    .await
                }
                PiError::CancelledPayment => {
                    self.give_up(
                        row,
                        format!(
                            "the Pioneer WAS paid on chain ({txid}) but Pi payment {pid} is cancelled: settle it with Pi support; never pay again"
                        ),
                    )
                    .await
                }
                _ if e.is_retryable() => {
                    self.retry_later_on(row, "pi_complete_failed", &e)
                        .await
                }
                _ => {
                    self.give_up(
                        row,
                        format!("Pi refused to complete payment {pid} with {txid} (the Pioneer WAS paid on chain): {e}"),
                    )
                    .await
                }
            },
        }
    }

    async fn completed(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let applied = self
            .apply(
                row,
                PayoutTransition::PiCompleted,
                None,
                PayoutPatch::default(),
            )
            .await?;
        if applied.as_ref().is_some_and(PayoutApplied::moved) {
            tracing::info!(payout_id = %row.id, "payout completed");
        }
        Ok(Self::moved_then(applied, StepOutcome::Done))
    }

    pub(super) async fn close_withdrawn(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let Some(pid) = &row.pi_payment_id else {
            return Ok(Flow::Stop(StepOutcome::Done));
        };
        let events = self.ledger.payout_events(&row.id).await?;
        if events.iter().any(|e| e.cause == "pi_cancelled") {
            return Ok(Flow::Stop(StepOutcome::Done));
        }
        if let Err(e) = self.cancel_at_pi(row, pid).await {
            if e.is_retryable() {
                return self
                    .wait(
                        row,
                        "pi_cancel_failed",
                        &e.to_string(),
                        self.backoff(row.attempts + 1),
                        false,
                    )
                    .await;
            }
            tracing::warn!(payout_id = %row.id, "cancelling Pi payment {pid} failed: {e}");
        }
        self.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause: "pi_cancelled",
                    detail: Some(pid.as_str()),
                    attempts: 0,
                    next_check_at: None,
                    reason: None,
                    submitted: false,
                },
            )
            .await?;
        Ok(Flow::Stop(StepOutcome::Done))
    }
}
