//! The approve step: decide whether a U2A payment may be paid, then approve it at Pi (or refuse
//! it, see [`super::refusal`]). Pi's payment id makes approve safe to repeat; `already_approved`
//! counts only after a `GET` shows the payment approved.
//!
//! Who pays comes from the job's [`ApproveCredential`] (the callback's token, or a signed-in
//! session's uid), never from the ledger, which stores no tokens. A job without one (the
//! sweeper's) re-reads Pi and then waits: the Pi SDK re-sends the approve callback with the
//! token about every 10 s, and a repeat for a payment idle `STUCK_AFTER` gets a job again.

use super::deps::{U2aDeps, patch_from};
use super::outcome::{StepError, StepResult, pi_failure};
use super::refusal::{Verdict, approval_verdict, refuse, who_sent};
use crate::dto::{Direction, PaymentDto};
use crate::ids::{OrderId, PaymentId};
use crate::jobs::ApproveCredential;
use crate::ledger::{LedgerError, Swept, now_ms};
use crate::pi_client::PiError;
use crate::state::{PaymentState, Transition};

/// What a job without a credential notes while it waits for the SDK's next approve callback.
pub const AWAITING_APPROVE_CALLBACK: &str = "awaiting_approve_callback";

/// Approve (or refuse) a payment the ledger holds as `received`; any other state means the
/// approval was decided already. `credential`: what the approve callback said about who pays
/// (`None` for a job no callback made).
pub(crate) async fn approve(
    deps: &U2aDeps,
    id: &PaymentId,
    credential: Option<&ApproveCredential>,
    attempt: usize,
) -> StepResult {
    let Some(row) = deps.load(id).await? else {
        return Ok(());
    };
    if row.state != PaymentState::Received {
        tracing::info!(state = %row.state, "approval already decided; skipping");
        return Ok(());
    }
    // Who pays is checked first: a token Pi refused (the client remembers it for a while)
    // costs no further call. Work nobody vouched for uses only its share of the Pi budget.
    let who = who_sent(deps, id, credential).await?;
    if !who.is_verified() && !deps.unverified_permit(id).await? {
        return Ok(());
    }
    let Some(dto) = deps.read_open_at_pi(id, attempt).await? else {
        return Ok(());
    };
    // Some real payloads omit `direction`; an explicit other direction is not ours to approve
    // or to cancel (it may be one of the app's own payouts).
    if let Some(direction) = &dto.direction
        && *direction != Direction::UserToApp
    {
        return Err(StepError::Attention(format!(
            "Pi shows this payment as {direction:?}, not user-to-app: it was sent to the U2A approve callback by mistake or on purpose; nothing was done at Pi"
        )));
    }
    if dto.status.developer_approved {
        // Approved already (our earlier attempt whose answer was lost): record, don't call.
        tracing::info!("already approved at Pi; recording without calling approve");
        return record_approved(deps, id, &dto, attempt).await;
    }
    match approval_verdict(deps, id, &dto, &who).await? {
        Verdict::Approve => {}
        Verdict::Refuse(reason) => return refuse(deps, id, &dto, reason, attempt).await,
        Verdict::AwaitCallback => return await_callback(deps, id, row.created_at, attempt).await,
    }
    let approved = match deps.pi.approve(id).await {
        Ok(approved) => approved,
        Err(e) => match e.root() {
            PiError::AlreadyApproved { .. } => confirm_approved(deps, id).await?,
            PiError::CancelledPayment => {
                let reason = "cancelled at Pi before approval".to_string();
                return deps
                    .record_cancelled(id, reason, attempt, patch_from(&dto))
                    .await;
            }
            _ => return Err(pi_failure("approving at Pi", e)),
        },
    };
    record_approved(deps, id, &approved, attempt).await
}

/// How long a payment without a credential waits for the SDK's next approve callback without
/// the sweeper counting it as stuck: the SDK re-sends it about every 10 s while the Pioneer's
/// page is open; after this the Pioneer has gone, and the sweeper's count leads to
/// `needs_attention`.
const AWAIT_CALLBACK_FOR_MS: i64 = 10 * 60_000;

/// How long each such wait holds the sweeper off (two of the SDK's re-sends).
const AWAIT_CALLBACK_HOLD_MS: i64 = 20_000;

/// No credential to check the Pioneer with: note it and leave the payment `received`, with the
/// approve step disarmed so that the SDK's next approve callback gets a job (with the token) at
/// once. While the payment is young this is waiting on the Pioneer, not being stuck: the
/// sweeper is held off and its count starts over.
async fn await_callback(
    deps: &U2aDeps,
    id: &PaymentId,
    created_at: i64,
    attempt: usize,
) -> StepResult {
    tracing::info!("no credential in this approve job; waiting for the next approve callback");
    deps.ledger.await_approve_callback(id).await?;
    let now = now_ms();
    let hold = if now.saturating_sub(created_at) < AWAIT_CALLBACK_FOR_MS {
        deps.ledger
            .throttled(
                Swept::Payment,
                id.as_str(),
                now.saturating_add(AWAIT_CALLBACK_HOLD_MS),
            )
            .await?
    } else {
        None
    };
    deps.ledger
        .note(
            id,
            AWAITING_APPROVE_CALLBACK,
            Some(
                "this approve job carries no access token (it was re-enqueued by the sweeper, or queued before an upgrade) and tokens are not stored: the Pioneer is verified when the Pi SDK sends the approve callback again (about every 10 s)",
            ),
            attempt as i64,
            hold,
        )
        .await?;
    Ok(())
}

/// After `already_approved`: trust it only if a fresh `GET` shows the payment approved.
async fn confirm_approved(deps: &U2aDeps, id: &PaymentId) -> Result<PaymentDto, StepError> {
    let dto = deps.read_at_pi(id, "confirming approval at Pi").await?;
    if dto.status.developer_approved {
        Ok(dto)
    } else {
        Err(StepError::Transient(
            "Pi answered already_approved but the payment does not show approved yet".into(),
        ))
    }
}

/// Record `approved`, binding the payment's order. If the order was taken meanwhile by another
/// payment, this payment is cancelled at Pi (it has no transaction yet, so Pi allows it).
async fn record_approved(
    deps: &U2aDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    attempt: usize,
) -> StepResult {
    let mut patch = patch_from(dto);
    patch.order_id = order_id_of(dto);
    match deps
        .ledger
        .apply(id, Transition::PiApproved, None, attempt as i64, patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(LedgerError::OrderUnavailable { why, .. }) => {
            let reason = format!("the order cannot take this payment: {why}");
            refuse(deps, id, dto, reason, attempt).await
        }
        Err(LedgerError::InvalidTransition(e)) => {
            tracing::info!(error = %e, "payment moved on; nothing to record");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The order id in the payment's metadata (`orderId`), if it is a valid one.
fn order_id_of(dto: &PaymentDto) -> Option<OrderId> {
    dto.metadata
        .get("orderId")
        .and_then(|v| v.as_str())
        .and_then(|s| OrderId::parse(s).ok())
}
