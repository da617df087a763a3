//! The A2U payout job: advances one payout through core's `PayoutProcessor`, which resumes from
//! the payout's stored step (so running the job twice, or concurrently, is safe), and turns the
//! step's outcome into what the queue should do next.

use crate::context::HandlerCtx;
use apalis::prelude::{AbortError, Attempt, BoxDynError};
use pi_payments_core::jobs::{Job, PayoutJob};
use pi_payments_core::payout::StepOutcome;
use tracing::Instrument;

/// One step of one payout, and what the queue should do next.
pub(crate) async fn run(
    job: PayoutJob,
    attempt: &Attempt,
    ctx: &HandlerCtx,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    let span = tracing::info_span!("job", job = "payout", payout_id = %job.payout_id, attempt = n);
    async move {
        let Some(processor) = &ctx.deps.payouts else {
            // Only registered with a processor; a job that arrives anyway waits for one.
            return Err("payouts are not configured in this worker (PI_WALLET_SEED unset)".into());
        };
        let outcome = match processor.step(&job.payout_id).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // The processor could not run (ledger, Horizon…): retry with backoff, and at
                // the cap stop; the payout keeps its stored step for the sweeper.
                if u32::try_from(n).unwrap_or(u32::MAX) >= ctx.retry.max_attempts {
                    tracing::error!(%error, "payout step keeps failing; leaving it to the sweeper");
                    return Err(Box::new(AbortError::new(error)) as BoxDynError);
                }
                tracing::warn!(%error, "payout step failed; will retry");
                return Err(error.into());
            }
        };
        ctx.webhook_nudge.notify_one();
        match outcome {
            StepOutcome::Done => Ok(()),
            StepOutcome::Failed { reason } => {
                tracing::warn!(%reason, "payout failed");
                Ok(())
            }
            StepOutcome::NeedsAttention { reason } => {
                tracing::error!(%reason, "payout needs attention");
                Ok(())
            }
            StepOutcome::Again => ctx
                .queue
                .push_jobs(vec![Job::Payout(job)])
                .await
                .map_err(Into::into),
            StepOutcome::RetryAt(delay) => ctx
                .queue
                .push_delayed(Job::Payout(job), delay)
                .await
                .map_err(Into::into),
        }
    }
    .instrument(span)
    .await
}
