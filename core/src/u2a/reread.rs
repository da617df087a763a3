//! The cancel and record-error steps: the frontend said the Pioneer cancelled, or reported an
//! error. Neither claim is trusted: the payment is re-read at Pi, recorded `cancelled` if Pi
//! says so, and otherwise what Pi shows is noted in the payment's history.

use super::deps::{U2aDeps, cancelled_reason, patch_from};
use super::outcome::{StepResult, pi_failure};
use crate::dto::PaymentDto;
use crate::ids::{PaymentId, Txid};
use crate::pi_client::PiError;

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
    let dto = match deps.pi.get_payment(id).await {
        Ok(dto) => dto,
        Err(e) if matches!(e.root(), PiError::PaymentNotFound) => {
            deps.ledger
                .note(
                    id,
                    cause,
                    Some("Pi does not know this payment"),
                    attempt as i64,
                    None,
                )
                .await?;
            return Ok(());
        }
        Err(e) => return Err(pi_failure("reading the payment at Pi", e)),
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
