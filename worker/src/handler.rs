//! The one apalis handler every job worker runs: it hands the job to its kind's adapter (core's
//! U2A processor or payout processor). The match is exhaustive, so a new job kind does not
//! compile until it is handled here.

use crate::context::HandlerCtx;
use crate::{payout, u2a};
use apalis::prelude::{Attempt, BoxDynError, Data};
use pi_payments_core::jobs::{Job, JobPayload};
use pi_payments_core::u2a::U2aStep;
use std::sync::Arc;

/// apalis handler for jobs of payload type `J`.
pub(crate) async fn handle_job<J: JobPayload>(
    job: J,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    match job.into() {
        Job::Approve(j) => u2a::run(U2aStep::Approve, &j.payment_id, &attempt, &ctx).await,
        Job::Complete(j) => u2a::run(U2aStep::Complete, &j.payment_id, &attempt, &ctx).await,
        Job::Cancel(j) => u2a::run(U2aStep::Cancel, &j.payment_id, &attempt, &ctx).await,
        Job::RecordError(j) => u2a::run(U2aStep::RecordError, &j.payment_id, &attempt, &ctx).await,
        Job::Incomplete(j) => u2a::run(U2aStep::Incomplete, &j.payment_id, &attempt, &ctx).await,
        Job::Payout(j) => payout::run(j, &attempt, &ctx).await,
    }
}
