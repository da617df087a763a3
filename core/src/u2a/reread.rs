//! The cancel and record-error steps: the frontend said the Pioneer cancelled, or reported an
//! error. Neither claim is trusted: the payment is re-read at Pi, recorded `cancelled` if Pi
//! says so, and otherwise what Pi shows is noted in the payment's history.

use super::deps::{U2aDeps, cancelled_reason, patch_from};
use super::outcome::StepResult;
use crate::dto::PaymentDto;
use crate::ids::{PaymentId, Txid};
use crate::state::PaymentState;

/// Re-read the payment at Pi: record `cancelled` if Pi says so, otherwise note what Pi shows
/// under `cause` (the callback that asked).
pub(crate) async fn reread(
    deps: &U2aDeps,
    id: &PaymentId,
    attempt: usize,
    cause: &str,
) -> StepResult {
    let Some(row) = deps.load(id).await? else {
        return Ok(());
    };
    if row.state.is_terminal() {
        return Ok(());
    }
    // These callbacks carry no credential: for a payment the ledger never saw approved they
    // are nobody's word, and use only their share of the Pi budget.
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
        deps.record_cancelled(id, reason, attempt, patch_from(&dto))
            .await?;
    } else {
        let detail = format!("Pi shows the payment open ({})", status_text(&dto));
        deps.ledger
            .note(id, cause, Some(&detail), attempt as i64, None)
            .await?;
    }
    Ok(())
}

/// Pi's status flags and linked transaction, for the history.
fn status_text(dto: &PaymentDto) -> String {
    let s = &dto.status;
    format!(
        "approved={}, verified={}, completed={}, tx={}",
        s.developer_approved,
        s.transaction_verified,
        s.developer_completed,
        dto.txid().map(Txid::as_str).unwrap_or("none")
    )
}
