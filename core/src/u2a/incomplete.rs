//! The incomplete step: Pi reported a payment as incomplete when the Pioneer signed in. With a
//! transaction it takes the complete path; without one, an approved payment is abandoned and
//! cancelled at Pi, so the Pioneer can pay again.

use super::complete::complete;
use super::deps::{U2aDeps, patch_from};
use super::outcome::StepResult;
use super::refusal::refuse;
use crate::ids::PaymentId;
use crate::state::Transition;

/// Settle an incomplete payment the ledger still holds open.
pub(crate) async fn incomplete(deps: &U2aDeps, id: &PaymentId, attempt: usize) -> StepResult {
    let Some(row) = deps.load(id).await? else {
        return Ok(());
    };
    if row.state.is_terminal() {
        return Ok(());
    }
    let Some(dto) = deps.read_open_at_pi(id, attempt).await? else {
        return Ok(());
    };
    if let Some(txid) = dto.txid().cloned() {
        // A transaction is linked: record it (if we had not) and run the complete step.
        if row.txid.is_none() {
            deps.apply(
                id,
                Transition::CompleteCallback { txid },
                attempt,
                patch_from(&dto),
            )
            .await?;
        }
        return complete(deps, id, attempt).await;
    }
    if dto.status.developer_approved {
        // Approved, no transaction, and the Pioneer is being asked about it at sign-in: it is
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
