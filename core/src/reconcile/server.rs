//! Pi's incomplete server payments (`GET /v2/payments/incomplete_server_payments`): A2U
//! payments neither completed nor cancelled at Pi. Each open one blocks the next payout to its
//! Pioneer (`ongoing_payment_found`), so each must be finished or reported:
//!
//! - ours (its identifier is a payout's `pi_payment_id`, or its metadata carries our payout id
//!   because the create answer was lost): the payout job is enqueued, and the payout processor
//!   resumes from the stored step (tx on chain with the memo → complete; envelope expired and
//!   not on chain → rebuild and pay; withdrawn payout → cancelled at Pi). A payout waiting for a
//!   retry time it chose is left to it.
//! - ours but settled here (completed, failed, needs attention): reported as a finding.
//! - created for a payout of ours that is bound to another Pi payment (a create that reached Pi
//!   after the payout had moved on) and without a transaction: never signed, so cancelled at Pi.
//! - not ours: reported as a finding (and logged), **never paid**: nothing here proves who it is
//!   for or why it exists. An operator cancels it at Pi if it should not be paid.
//!
//! Findings whose payment no longer shows up are marked resolved.

use super::error::ReconcileError;
use super::reconciler::Reconciler;
use super::summary::RunSummary;
use crate::dto::PaymentDto;
use crate::ids::PayoutId;
use crate::jobs::Job;
use crate::ledger::payouts::PAYOUT_ID_METADATA_KEY;
use crate::ledger::{Ledger, LedgerError, PayoutRow, now_ms};
use crate::state::PayoutState;
use std::collections::HashSet;

/// The finding kind of an incomplete server payment no payout of ours matches.
pub const UNKNOWN_SERVER_PAYMENT: &str = "unknown_incomplete_server_payment";

/// The finding kind of an entry of Pi's list that is not a readable payment: reported, the
/// rest of the list still processed.
pub const UNREADABLE_SERVER_PAYMENT: &str = "unreadable_incomplete_server_payment";

/// The finding kind of an incomplete server payment whose payout is settled here (completed,
/// failed, needs attention) while Pi still shows it open.
pub const SETTLED_BUT_OPEN_AT_PI: &str = "payout_settled_but_open_at_pi";

/// The payout a Pi payment belongs to: by stored identifier, else by the payout id we put in
/// its metadata (a payment whose create answer was lost).
pub(crate) async fn payout_for(
    ledger: &Ledger,
    dto: &PaymentDto,
) -> Result<Option<PayoutRow>, LedgerError> {
    if let Some(row) = ledger.payout_by_pi_payment(&dto.identifier).await? {
        return Ok(Some(row));
    }
    let Some(id) = tagged_payout(dto) else {
        return Ok(None);
    };
    match ledger.payout(&id).await? {
        // Only a payout that has no Pi payment yet, or this one, may claim it.
        Some(row)
            if row
                .pi_payment_id
                .as_ref()
                .is_none_or(|p| *p == dto.identifier) =>
        {
            Ok(Some(row))
        }
        _ => Ok(None),
    }
}

/// A payment created for one of our payouts (its metadata names it) that is bound to another
/// Pi payment, with no transaction at Pi: a create that reached Pi after the payout had moved
/// on. Nothing of ours ever signs for it.
async fn superseded(ledger: &Ledger, dto: &PaymentDto) -> Result<bool, LedgerError> {
    if dto.txid().is_some() {
        return Ok(false);
    }
    let Some(id) = tagged_payout(dto) else {
        return Ok(false);
    };
    Ok(ledger
        .payout(&id)
        .await?
        .and_then(|row| row.pi_payment_id)
        .is_some_and(|bound| bound != dto.identifier))
}

/// The payout id we put in a Pi payment's metadata when creating it, if any.
fn tagged_payout(dto: &PaymentDto) -> Option<PayoutId> {
    dto.metadata
        .get(PAYOUT_ID_METADATA_KEY)
        .and_then(|v| v.as_str())
        .and_then(|s| PayoutId::parse(s).ok())
}

/// A one-line description of a Pi payment for findings and logs.
pub(crate) fn describe(dto: &PaymentDto) -> String {
    format!(
        "{} Pi to uid {}, memo {:?}, created {}, tx {}",
        dto.amount,
        dto.user_uid,
        dto.memo.chars().take(80).collect::<String>(),
        dto.created_at.as_deref().unwrap_or("?"),
        dto.txid().map(|t| t.as_str()).unwrap_or("none")
    )
}

/// Resume or report every incomplete server payment.
pub(crate) async fn reconcile_server_payments(
    r: &Reconciler,
    summary: &mut RunSummary,
    already_enqueued: &HashSet<PayoutId>,
) -> Result<(), ReconcileError> {
    let (open, unreadable) = r.pi.incomplete_server_payments_read().await?;
    summary.server_payments = (open.len() + unreadable.len()) as u64;
    let now = now_ms();
    let mut jobs = Vec::new();
    let mut unknown_seen = HashSet::new();
    let mut settled_seen = HashSet::new();
    let mut unreadable_seen = HashSet::new();
    for entry in unreadable {
        let subject = entry
            .identifier
            .clone()
            .unwrap_or_else(|| format!("entry-{}", entry.index));
        let detail = format!(
            "Pi listed an incomplete server payment this service cannot read ({}); the other entries were processed. Look it up at Pi and cancel or complete it by hand",
            entry.problem
        );
        tracing::warn!(pi_payment_id = %subject, %detail, "unreadable incomplete server payment");
        r.ledger
            .record_finding(UNREADABLE_SERVER_PAYMENT, &subject, &detail)
            .await?;
        unreadable_seen.insert(subject.clone());
        summary.server_unknown.push(subject);
    }
    for dto in &open {
        let id = dto.identifier.as_str().to_string();
        match payout_for(&r.ledger, dto).await? {
            None if superseded(&r.ledger, dto).await? => {
                // Created for a payout that was bound to another Pi payment meanwhile: never
                // signed (only a bound payment is), so closing it costs nobody anything and
                // unblocks the Pioneer.
                match r.pi.cancel(&dto.identifier).await {
                    Ok(_) => {
                        tracing::warn!(pi_payment_id = %id, "cancelled a Pi payment created for a payout already bound to another one (never signed)");
                        summary.server_superseded.push(id);
                    }
                    Err(e) => {
                        tracing::warn!(pi_payment_id = %id, "cancelling a superseded Pi payment failed: {e}; tried again next run");
                    }
                }
            }
            None => {
                let detail = format!(
                    "{}; no payout of this service matches its identifier or metadata: left alone, never paid (cancel it at Pi if it is not yours to pay)",
                    describe(dto)
                );
                tracing::warn!(pi_payment_id = %id, %detail, "unknown incomplete server payment");
                r.ledger
                    .record_finding(UNKNOWN_SERVER_PAYMENT, &id, &detail)
                    .await?;
                unknown_seen.insert(id.clone());
                summary.server_unknown.push(id);
            }
            Some(payout) => match payout.state {
                PayoutState::Completed | PayoutState::Failed | PayoutState::NeedsAttention => {
                    let detail = format!(
                        "payout {} is {} here but Pi still shows its payment open ({})",
                        payout.id,
                        payout.state,
                        describe(dto)
                    );
                    tracing::warn!(pi_payment_id = %id, %detail, "settled payout open at Pi");
                    r.ledger
                        .record_finding(SETTLED_BUT_OPEN_AT_PI, &id, &detail)
                        .await?;
                    settled_seen.insert(id.clone());
                    summary.server_settled.push(id);
                }
                _ if payout.next_check_at.is_some_and(|t| t > now) => {
                    summary.server_waiting.push(payout.id.to_string());
                }
                _ => {
                    if !already_enqueued.contains(&payout.id) {
                        tracing::info!(pi_payment_id = %id, payout_id = %payout.id, state = %payout.state, "resuming an incomplete server payment");
                        jobs.push(Job::payout(payout.id.clone()));
                    }
                    summary.server_resumed.push(payout.id.to_string());
                }
            },
        }
    }
    if !jobs.is_empty() {
        r.queue.enqueue_many(jobs).await?;
    }
    // What no longer shows up is no longer open at Pi.
    for finding in r.ledger.open_findings(None).await? {
        let seen = match finding.kind.as_str() {
            UNKNOWN_SERVER_PAYMENT => unknown_seen.contains(&finding.subject),
            UNREADABLE_SERVER_PAYMENT => unreadable_seen.contains(&finding.subject),
            SETTLED_BUT_OPEN_AT_PI => settled_seen.contains(&finding.subject),
            _ => true,
        };
        if !seen {
            r.ledger
                .resolve_finding(&finding.kind, &finding.subject)
                .await?;
        }
    }
    Ok(())
}
