//! The incomplete step: Pi reported a payment as incomplete when the Pioneer signed in. With a
//! transaction linked at Pi it takes the complete path (with Pi's txid). Without one, an
//! approved payment is abandoned and cancelled at Pi, so the Pioneer can pay again, but only
//! when its own Pioneer asks (a token or session whose uid is Pi's `user_uid`) or once it has
//! waited `ANONYMOUS_CANCEL_GRACE` after approval: the callback itself is anonymous, and a
//! stranger must not cancel a payment its Pioneer is still signing.

use super::complete::complete;
use super::deps::U2aDeps;
use super::outcome::StepResult;
use super::refusal::{Who, refuse, who_sent};
use crate::ids::PaymentId;
use crate::jobs::ApproveCredential;
use crate::ledger::now_ms;
use crate::state::PaymentState;

/// Settle an incomplete payment the ledger still holds open. `credential`: who sent the
/// callback (`Missing`: anonymous); `None` for the sweeper's job.
pub(crate) async fn incomplete(
    deps: &U2aDeps,
    id: &PaymentId,
    credential: Option<&ApproveCredential>,
    attempt: usize,
) -> StepResult {
    let Some(row) = deps.load(id).await? else {
        return Ok(());
    };
    if row.state.is_terminal() {
        return Ok(());
    }
    let who = match credential {
        Some(credential) => who_sent(deps, id, Some(credential)).await?,
        None => Who::Unknown,
    };
    let vouched = who.is_verified() || row.state != PaymentState::Received;
    if !vouched && !deps.unverified_permit(id).await? {
        return Ok(());
    }
    let Some(dto) = deps.read_open_at_pi(id, attempt).await? else {
        return Ok(());
    };
    if let Some(txid) = dto.txid() {
        // A transaction is linked: the complete step binds Pi's txid and completes.
        return complete(deps, id, Some(txid), attempt).await;
    }
    if dto.status.developer_approved {
        // A callback's job waits out the grace unless its Pioneer sent it; the sweeper's (no
        // credential at all) is the service's own decision on a payment it saw sit idle.
        let from_callback = credential.is_some();
        if from_callback && !who.is(&dto.user_uid) {
            let grace = deps.anonymous_cancel_grace;
            let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
            let approved_at = deps.ledger.approved_at(id).await?.unwrap_or(row.created_at);
            let waited_ms = now_ms().saturating_sub(approved_at);
            if waited_ms < grace_ms {
                let detail = format!(
                    "Pi shows the payment approved {}s ago without a transaction: only its Pioneer (access token or session) may have it cancelled before ANONYMOUS_CANCEL_GRACE ({}s) has passed; nothing was done",
                    waited_ms / 1000,
                    grace.as_secs()
                );
                deps.ledger
                    .note(
                        id,
                        "incomplete_callback",
                        Some(&detail),
                        attempt as i64,
                        None,
                    )
                    .await?;
                return Ok(());
            }
        }
        // Approved, no transaction, and its Pioneer asks (or it waited out the grace): it is
        // abandoned. Cancelling unblocks the Pioneer's next purchase.
        let reason = "abandoned: approved at Pi but no transaction was submitted".to_string();
        return refuse(deps, id, &dto, reason, attempt).await;
    }
    // Not approved yet: the approve job (or the sweeper) owns it.
    deps.ledger
        .note(
            id,
            "incomplete_callback",
            Some("Pi shows the payment not approved and without a transaction"),
            attempt as i64,
            None,
        )
        .await?;
    Ok(())
}
