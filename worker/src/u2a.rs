//! The U2A job handlers' adapter: core's [`U2aProcessor`](pi_payments_core::u2a::U2aProcessor)
//! decides every step (see `pi_payments_core::u2a`); this turns its outcome into what apalis
//! needs: done, a failed attempt to retry with backoff, or an aborted job. A throttled step is
//! none of these: the handler waits (as the same attempt, holding its slot, which is what slowing
//! down means) and runs the step again, so apalis never counts it.

use crate::context::HandlerCtx;
use apalis::prelude::{AbortError, Attempt, BoxDynError};
use pi_payments_core::ids::PaymentId;
use pi_payments_core::u2a::{StepInput, U2aOutcome, U2aStep};

/// Run one U2A step for `payment_id` and map its outcome for apalis. `input`: what the job
/// carries from its callback (who sent it, which txid it claimed).
pub(crate) async fn run(
    step: U2aStep,
    payment_id: &PaymentId,
    input: StepInput<'_>,
    attempt: &Attempt,
    ctx: &HandlerCtx,
) -> Result<(), BoxDynError> {
    let mut throttles = 0u32;
    let outcome = loop {
        let outcome = ctx
            .u2a
            .run_with(step, payment_id, input, attempt.current(), throttles)
            .await;
        match outcome {
            U2aOutcome::Throttled { delay, .. } => {
                tokio::time::sleep(delay).await;
                throttles = throttles.saturating_add(1);
            }
            other => break other,
        }
    };
    match outcome {
        U2aOutcome::Done => {
            // Any transition may have written an outbox event.
            ctx.webhook_nudge.notify_one();
            Ok(())
        }
        U2aOutcome::Retry { reason } => Err(reason.into()),
        U2aOutcome::GaveUp { reason, flagged } => {
            if flagged {
                ctx.webhook_nudge.notify_one();
            }
            Err(Box::new(AbortError::new(GaveUp(reason))))
        }
        // The loop above only ends on another outcome.
        U2aOutcome::Throttled { reason, .. } => Err(reason.into()),
    }
}

/// The error an aborted job carries into apalis' dead set.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GaveUp(String);
