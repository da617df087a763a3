//! The complete step: bind the txid Pi linked to the payment (the callback's is only a claim),
//! verify that transaction on Horizon, then complete the payment at Pi, and only after Pi's 2xx
//! record it `completed`. `already_completed` counts only after a `GET` shows the payment
//! completed with OUR txid.

use super::deps::{U2aDeps, cancelled_reason};
use super::outcome::{StepError, StepResult, pi_failure};
use crate::amount::PiAmount;
use crate::dto::PaymentDto;
use crate::horizon::VerificationProblem;
use crate::ids::{PaymentId, Txid};
use crate::ledger::{CallbackStep, PaymentPatch, PaymentRow};
use crate::pi_client::PiError;
use crate::state::{PaymentState, Transition};
use crate::throttle::Throttling;

/// How many tries a complete job gives Pi to link a transaction before it stops waiting (the
/// callback's txid may be a stranger's invention) and leaves the step to the next complete
/// callback.
const TRIES_FOR_A_LINK: usize = 2;

/// Complete a payment. The txid acted on is the one Pi linked to the payment, read fresh: the
/// callback's (`hint`) is a claim, noted when it differs, never bound. A payment already
/// `completing` has Pi's txid bound; an open one gets it bound here first.
pub(crate) async fn complete(
    deps: &U2aDeps,
    id: &PaymentId,
    hint: Option<&Txid>,
    attempt: usize,
) -> StepResult {
    let Some(row) = deps.load(id).await? else {
        return Ok(());
    };
    match row.state {
        PaymentState::Completing => {}
        PaymentState::Received | PaymentState::Approved | PaymentState::NeedsAttention => {
            return bind_and_complete(deps, id, &row, hint, attempt).await;
        }
        PaymentState::Completed | PaymentState::Cancelled => {
            tracing::info!(state = %row.state, "completion not due; skipping");
            return Ok(());
        }
    }
    let Some(txid) = row.txid.clone() else {
        return Err(StepError::Attention(
            "the payment is completing but no txid is recorded".into(),
        ));
    };
    let dto = deps.read_at_pi(id, "reading the payment at Pi").await?;
    finish(deps, id, &row, &txid, &dto, attempt).await
}

/// An open payment: bind the txid Pi linked (if any yet), then complete with it.
async fn bind_and_complete(
    deps: &U2aDeps,
    id: &PaymentId,
    row: &PaymentRow,
    hint: Option<&Txid>,
    attempt: usize,
) -> StepResult {
    // Complete callbacks carry no credential: one for a payment the ledger never saw approved
    // is nobody's word, and uses only its share of the Pi budget.
    if row.state == PaymentState::Received && !deps.unverified_permit(id).await? {
        return Ok(());
    }
    let Some(dto) = deps
        .read_known_at_pi(id, attempt, "reading the payment at Pi")
        .await?
    else {
        return Ok(());
    };
    if let Some(reason) = cancelled_reason(&dto) {
        return deps
            .record_cancelled(id, reason, attempt, PaymentPatch::default())
            .await;
    }
    let Some(linked) = dto.txid().cloned() else {
        if attempt < TRIES_FOR_A_LINK {
            return Err(StepError::Transient(
                "Pi has not linked a transaction to the payment yet".into(),
            ));
        }
        // Nothing was bound; the next complete callback (the SDK repeats it) looks again.
        deps.ledger
            .note(
                id,
                "complete_callback_unconfirmed",
                Some("Pi shows no transaction linked to the payment: the callback's txid was not acted on; the next complete callback looks again"),
                attempt as i64,
                None,
            )
            .await?;
        deps.ledger
            .rearm_callback(id, CallbackStep::Complete)
            .await?;
        return Ok(());
    };
    if let Some(hint) = hint
        && *hint != linked
    {
        let detail =
            format!("the callback claimed txid {hint}; Pi linked {linked}, which is the one used");
        deps.ledger
            .note(
                id,
                "txid_hint_mismatch",
                Some(&detail),
                attempt as i64,
                None,
            )
            .await?;
    }
    let bound = Transition::CompleteCallback {
        txid: linked.clone(),
    };
    deps.apply(id, bound, attempt, PaymentPatch::default())
        .await?;
    finish(deps, id, row, &linked, &dto, attempt).await
}

/// Complete with `txid` (Pi's, bound in the ledger), `dto` being Pi's fresh view.
async fn finish(
    deps: &U2aDeps,
    id: &PaymentId,
    row: &PaymentRow,
    txid: &Txid,
    dto: &PaymentDto,
    attempt: usize,
) -> StepResult {
    let txid = txid.clone();
    if dto.status.developer_completed {
        // Completed by an earlier attempt whose answer was lost: only with OUR txid.
        return match dto.txid() {
            Some(linked) if *linked == txid => record_completed(deps, id, attempt).await,
            other => Err(StepError::Attention(format!(
                "Pi shows the payment completed with txid {} but we recorded {txid}",
                other.map(Txid::as_str).unwrap_or("(none)")
            ))),
        };
    }
    if let Some(reason) = cancelled_reason(dto) {
        return deps
            .record_cancelled(id, reason, attempt, PaymentPatch::default())
            .await;
    }
    match dto.txid() {
        None => {
            return Err(StepError::Transient(
                "Pi has not linked a transaction to the payment yet".into(),
            ));
        }
        Some(linked) if *linked != txid => {
            return Err(StepError::Attention(format!(
                "the recorded txid {txid} is not the transaction Pi linked ({linked})"
            )));
        }
        Some(_) => {}
    }
    if let Some(recorded) = row.amount
        && recorded != dto.amount
    {
        return Err(StepError::Attention(format!(
            "Pi's amount {} differs from the amount recorded at approval {recorded}",
            dto.amount
        )));
    }
    verify_on_chain(deps, id, &txid, dto.amount).await?;

    match deps.pi.complete(id, &txid).await {
        Ok(_) => {}
        Err(e) => match e.root() {
            PiError::AlreadyCompleted { .. } => confirm_completed(deps, id, &txid).await?,
            PiError::CancelledPayment => {
                let reason = "cancelled at Pi before completion".to_string();
                return deps
                    .record_cancelled(id, reason, attempt, PaymentPatch::default())
                    .await;
            }
            PiError::NotVerified => {
                return Err(StepError::Transient(
                    "Pi has not verified the transaction yet".into(),
                ));
            }
            // We saw the transaction on chain ourselves; an unknown verification_error may be
            // Pi not having indexed it yet. Retried with backoff up to the job's attempts, then
            // needs_attention with Pi's own words.
            PiError::VerificationFailed { verification_error }
                if !verification_error.is_final() =>
            {
                return Err(StepError::Transient(format!("completing at Pi: {e}")));
            }
            _ => return Err(pi_failure("completing at Pi", e)),
        },
    }
    // Only now, after Pi's 2xx (or a confirmed already_completed): completed, order paid,
    // payment.completed written, all in the ledger's one transaction.
    record_completed(deps, id, attempt).await
}

/// Record `completed` (the order paid and `payment.completed` written with it).
async fn record_completed(deps: &U2aDeps, id: &PaymentId, attempt: usize) -> StepResult {
    deps.apply(
        id,
        Transition::PiCompleted,
        attempt,
        PaymentPatch::default(),
    )
    .await?;
    Ok(())
}

/// After `already_completed`: trust it only if a fresh `GET` shows it completed with our txid.
async fn confirm_completed(deps: &U2aDeps, id: &PaymentId, txid: &Txid) -> StepResult {
    let dto = deps.read_at_pi(id, "confirming completion at Pi").await?;
    match dto.txid() {
        Some(linked) if dto.status.developer_completed && linked == txid => Ok(()),
        Some(linked) if linked != txid => Err(StepError::Attention(format!(
            "Pi says already completed, with txid {linked}, not ours ({txid})"
        ))),
        _ => Err(StepError::Transient(
            "Pi answered already_completed but the payment does not show completed yet".into(),
        )),
    }
}

/// On Horizon: the transaction succeeded, its text memo is the payment id, and it holds one
/// native payment of exactly `amount` to the app wallet.
async fn verify_on_chain(
    deps: &U2aDeps,
    id: &PaymentId,
    txid: &Txid,
    amount: PiAmount,
) -> StepResult {
    let Err(e) = deps
        .horizon
        .verify_payment(txid, id.as_str(), &deps.app_wallet, amount)
        .await
    else {
        return Ok(());
    };
    if let Some(throttle) = e.throttle() {
        let reason = format!("Horizon asked us to slow down: {e}");
        return Err(StepError::Throttled(reason, throttle));
    }
    match e {
        e @ VerificationProblem::NotFound(_) => Err(StepError::Transient(format!(
            "the transaction is not on Horizon yet: {e}"
        ))),
        e if e.is_retryable() => Err(StepError::Transient(format!(
            "Horizon could not be read: {e}"
        ))),
        e => Err(StepError::Attention(format!(
            "the transaction does not pay this payment ({}): {e}",
            e.code()
        ))),
    }
}
